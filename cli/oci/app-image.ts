/**
 * What goes in the OCI image of one app of the fleet (the proxy or the backend), as plain data
 * from the fleet plan and what the build left: which files, the command, the labels and the
 * manifest annotations. Two kinds, after what the project's runtime boots:
 *
 * - `static`: the app's static Linux binary (`make static`, as qemu `microvm` guests boot it) as
 *   the only file of an otherwise empty image, its Entrypoint: for the default runtime (runc);
 * - `unikraft`: the app's kraft-built kernel (and initrd) with urunc's annotations and
 *   `/urunc.json` (urunc.ts): for urunc, which boots it in QEMU.
 *
 * The arguments (`Cmd`) are the ones the fleet's plan gives the machine, except what depends
 * on where it runs, which an image cannot know: it listens on every address of whatever
 * network it gets (0.0.0.0), the proxy starts without backends (they join through its admin
 * API, as they do when a fleet scales), and the proxy's certificate and key are not in it
 * (`--tls-cert` names the file the deployment must provide; a private key never goes in an
 * image that is pushed to a registry).
 */
import { basename } from 'node:path';
import { machinePorts } from '../config/schema.js';
import { GUEST_PATHS } from '../fleet/guest-paths.js';
import { kernelCommandLineProblem } from '../fleet/kraft-plan.js';
import { backendArgs, proxyArgs, type FleetPlan, type Role } from '../fleet/plan.js';
import { UserError } from '../errors.js';
import { URUNC_PATHS, uruncAnnotations, uruncJson } from './urunc.js';

export type ImageKind = 'static' | 'unikraft';

/** What the build left for an app: its static binary, or its Unikraft kernel (and initrd). */
export type BuiltApp =
  | { kind: 'static'; binary: string }
  | { kind: 'unikraft'; kernel: string; initrd?: string; unikraftVersion?: string };

/** A file of the image: copied from the host (`source`) or written as given (`text`). */
export type ImageFile = { path: string; mode: number } & ({ source: string } | { text: string });

export interface AppImage {
  role: Role;
  kind: ImageKind;
  /** GOARCH spelling: `amd64`. */
  architecture: string;
  files: ImageFile[];
  entrypoint?: string[];
  cmd: string[];
  exposedPorts: number[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Unikraft kernels for the kraft runtime and the qemu runtime's `unikraft` guests; static binaries otherwise. */
export function imageKind(plan: FleetPlan): ImageKind {
  return plan.runtime === 'kraft' || (plan.runtime === 'qemu' && plan.config.qemu.guest === 'unikraft') ? 'unikraft' : 'static';
}

/** The machine's arguments from the fleet plan, without what depends on where it runs (see above). */
export function imageProgramArgs(plan: FleetPlan, role: Role): string[] {
  const ports = machinePorts(plan.config);
  if (role === 'backend') return backendArgs('backend', `0.0.0.0:${ports.backend}`);
  const listeners = { listen: `0.0.0.0:${ports.proxy}`, admin: `0.0.0.0:${ports.admin}`, backendNetwork: plan.config.network.subnet };
  return proxyArgs(plan.config, listeners, [], plan.proxyCertFile === null ? null : `/${GUEST_PATHS.certificate}`);
}

/** `hostArchitecture` (GOARCH spelling) is what `make static` built for; kraft builds x86_64 kernels. */
export function planAppImage(plan: FleetPlan, role: Role, built: BuiltApp, hostArchitecture: string): AppImage {
  const args = imageProgramArgs(plan, role);
  const ports = machinePorts(plan.config);
  const exposedPorts = role === 'proxy' ? [ports.proxy, ports.admin] : [ports.backend];
  if (built.kind === 'static') {
    // Named as the app's binary, as the apps' Dockerfiles name it: /uproxy-proxy, /backend.
    const app = role === 'proxy' ? plan.proxy.app : (plan.backends[0]?.app ?? plan.proxy.app);
    const path = basename(app.binary);
    return { role, kind: 'static', architecture: hostArchitecture, files: [{ path, mode: 0o755, source: built.binary }], entrypoint: [`/${path}`], cmd: args, exposedPorts, labels: {}, annotations: {} };
  }
  // urunc adds its own words (the kernel's name, netdev.ip=..., vfs.fstab=...) to these; the widest IPv4 address stands in for the one it gets.
  const problem = kernelCommandLineProblem({ name: role, instance: 'Unikraft', ip: '255.255.255.255', args }, 'native');
  if (problem) throw new UserError(`${problem}: use fewer tokens, or a static image (the host runtime or qemu's microvm guests)`);
  const annotations = uruncAnnotations({ programArgs: args, hasInitrd: built.initrd !== undefined, unikraftVersion: built.unikraftVersion });
  const files: ImageFile[] = [
    { path: layerPath(URUNC_PATHS.kernel), mode: 0o644, source: built.kernel },
    ...(built.initrd === undefined ? [] : [{ path: layerPath(URUNC_PATHS.initrd), mode: 0o644, source: built.initrd }]),
    { path: layerPath(URUNC_PATHS.config), mode: 0o644, text: uruncJson(annotations) },
  ];
  return { role, kind: 'unikraft', architecture: 'amd64', files, cmd: args, exposedPorts, labels: annotations, annotations };
}

/** `/.boot/kernel` as a layer names it: relative to the image's root. */
function layerPath(imagePath: string): string {
  return imagePath.slice(1);
}

/** Node's name of the CPU architecture (`process.arch`) as OCI spells it (Go's GOARCH). */
export function ociArchitecture(nodeArch: string): string {
  const known: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };
  const architecture = known[nodeArch];
  if (architecture === undefined) throw new UserError(`static images are built for this host's CPU, ${nodeArch}, which uproxy does not package: build them on an x86_64 or arm64 host`);
  return architecture;
}
