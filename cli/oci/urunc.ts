/**
 * What urunc (https://github.com/urunc-dev/urunc), the OCI runtime for unikernels, needs to
 * find in an image to boot the kernel in it, as its own packager bunny writes it
 * (nubificus/bunny hops/package.go, v0.0.5; urunc docs/package/index.md):
 *
 * - the `com.urunc.unikernel.*` annotations as plain text in the manifest (urunc's containerd
 *   shim copies these into the container's spec: pkg/containerd-shim/containerd/annotations.go)
 *   and in the config's labels;
 * - the same in `/urunc.json` at the root of the image, each value base64-encoded: what urunc
 *   reads when the annotations do not reach it (Docker, older shims; pkg/unikontainers/config.go
 *   decodes every value of that file).
 *
 * The command line is the program's arguments alone, as the image's `Cmd`: urunc puts the
 * container's args after ` -- ` itself, in front of them the kernel name and the network
 * (`netdev.ip=` from the container's interface) and, with an initrd, `vfs.fstab`
 * (pkg/unikontainers/unikernels/unikraft.go).
 */

/** Where the kernel and its initrd go in the image: bunny's defaults (DefaultKernelPath, DefaultRootfsPath). */
export const URUNC_PATHS = { kernel: '/.boot/kernel', initrd: '/.boot/rootfs', config: '/urunc.json' } as const;

const PREFIX = 'com.urunc.unikernel.';

export interface UnikraftGuest {
  programArgs: readonly string[];
  hasInitrd: boolean;
  /** The Unikraft release the kernel was built from (`0.16.3`), when known: urunc picks the command-line syntax by it. */
  unikraftVersion?: string;
}

/** The urunc annotations of a Unikraft kernel booted by QEMU, values in plain text, keys sorted. */
export function uruncAnnotations(guest: UnikraftGuest): Record<string, string> {
  const values: Record<string, string | undefined> = {
    binary: URUNC_PATHS.kernel,
    cmdline: guest.programArgs.join(' '),
    hypervisor: 'qemu',
    initrd: guest.hasInitrd ? URUNC_PATHS.initrd : undefined,
    // The image's own files are not the guest's root: the kernel has no filesystem driver for them.
    mountRootfs: 'false',
    unikernelType: 'unikraft',
    unikernelVersion: guest.unikraftVersion,
  };
  return Object.fromEntries(Object.entries(values).flatMap(([key, value]) => (value === undefined ? [] : [[PREFIX + key, value]])));
}

/** `/urunc.json`: the annotations with every value base64-encoded, keys sorted, as bunny writes it. */
export function uruncJson(annotations: Readonly<Record<string, string>>): string {
  const encoded = Object.entries(annotations)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => [key, Buffer.from(value, 'utf8').toString('base64')]);
  return JSON.stringify(Object.fromEntries(encoded));
}

/**
 * The Unikraft release from the core's `version.mk` (or, before 0.17, its Makefile), which
 * kraft fetches into `<app>/.unikraft/unikraft/`: `UK_VERSION = 0`, `UK_SUBVERSION = 16`,
 * `UK_EXTRAVERSION = 3` give `0.16.3`.
 */
export function unikraftVersion(makefile: string): string | undefined {
  const value = (name: string): string | undefined => new RegExp(`^${name}\\s*[:?]?=\\s*(\\S+)\\s*$`, 'm').exec(makefile)?.[1];
  const [major, minor, extra] = [value('UK_VERSION'), value('UK_SUBVERSION'), value('UK_EXTRAVERSION')];
  if (major === undefined || minor === undefined || !/^\d+$/.test(major) || !/^\d+$/.test(minor)) return undefined;
  return extra === undefined ? `${major}.${minor}` : `${major}.${minor}.${extra}`;
}
