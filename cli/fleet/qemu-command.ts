/**
 * Every QEMU command line uproxy runs, from typed options to argv (through the shared
 * renderer): a fleet machine's, and the probe guests of `doctor` and `--accel auto`. Pure: the
 * files named here are created by the runtime, not by this module.
 *
 * Two guest kinds boot the same way (`-kernel`, optional `-initrd`, `-append`) and differ in
 * how a guest learns its address: a `microvm` guest (Linux + uproxy's initramfs) reads
 * `uproxy.ip=`/`uproxy.gw=` in its init script; a `unikraft` guest reads lwip's
 * `netdev.ip=` and takes its program arguments after ` -- `.
 */
import { commandLine, renderOptions, type CommandLine, type Options } from './argv.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

export type GuestKind = 'microvm' | 'unikraft';
export type Accel = 'kvm' | 'tcg';
/** `up --accel`: `auto` is KVM when a probe guest boots under it, else TCG. */
export type AccelChoice = Accel | 'auto';
/**
 * `pc` (virtio-net-pci) or QEMU's `microvm` board (virtio-mmio): the latter boots faster but
 * hangs at random under TCG unless the kernel is told the TSC frequency (`tscKhz`).
 */
export type BoardType = 'pc' | 'microvm';

export interface GuestNetwork {
  tap: string;
  mac: string;
  ip: string;
  prefix: number;
  gateway: string;
}

export interface QemuGuest {
  name: string;
  kind: GuestKind;
  accel: Accel;
  board: BoardType;
  memoryMiB: number;
  kernel: string;
  initrd?: string;
  network: GuestNetwork;
  /** Only `unikraft` guests take these from the kernel command line; a `microvm` guest has them in its initramfs. */
  programArgs: readonly string[];
  /** Host TSC frequency, required for the `microvm` board under TCG. */
  tscKhz?: number;
  qmpSocket: string;
  serialLog: string;
  pidFile: string;
  /** Detach after start-up so the machine outlives the `uproxy` process that started it. */
  daemonize: boolean;
  qemuBinary?: string;
}

/** The smallest memory each kind was measured to boot and serve with (see shared/notes/vm-guests.md). */
export const MIN_MEMORY_MIB: Record<GuestKind, number> = { microvm: 72, unikraft: 8 };

export function qemuCommand(guest: QemuGuest): CommandLine {
  validate(guest);
  const netdevId = 'net0';
  const options: Options = {
    name: guest.name,
    ...bareMachine(guest.board, guest.accel, guest.memoryMiB, guest.serialLog),
    cpu: cpuModel(guest),
    smp: 1,
    'no-reboot': true,
    kernel: guest.kernel,
    initrd: guest.initrd,
    append: kernelCommandLine(guest),
    netdev: { head: 'tap', props: { id: netdevId, ifname: guest.network.tap, script: 'no', downscript: 'no' } },
    device: {
      head: guest.board === 'microvm' ? 'virtio-net-device' : 'virtio-net-pci',
      props: { netdev: netdevId, mac: guest.network.mac },
    },
    qmp: { head: `unix:${guest.qmpSocket}`, props: { server: true, wait: false } },
    pidfile: guest.pidFile,
    daemonize: guest.daemonize,
  };
  return commandLine(guest.qemuBinary ?? QEMU_BINARY, renderOptions(options, '-'));
}

/** What a probe guest boots: a raw boot-sector image (with QEMU's isa-debug-exit port), or a Linux kernel and initrd. */
export type ProbeBoot =
  | { image: string; exitPort: number }
  | { kernel: string; initrd: string };

/**
 * A probe guest: a bare `pc` machine with only a serial port (to `serialLog`), booting the
 * boot sector (16 MiB is plenty) or a Linux kernel (96 MiB, as a microvm guest gets).
 */
export function qemuProbeCommand(accel: Accel, boot: ProbeBoot, serialLog: string): CommandLine {
  const booted: Options = 'image' in boot
    ? {
      drive: { props: { file: boot.image, format: 'raw', if: 'ide' } },
      device: { head: 'isa-debug-exit', props: { iobase: boot.exitPort, iosize: 4 } },
    }
    : { kernel: boot.kernel, initrd: boot.initrd, append: 'console=ttyS0 panic=-1' };
  return commandLine(QEMU_BINARY, renderOptions({
    ...bareMachine('pc', accel, 'image' in boot ? 16 : 96, serialLog),
    ...booted,
    'no-reboot': true,
  }, '-'));
}

/** No default devices, no user config, no display: the only output is the serial port, to a file. */
function bareMachine(board: BoardType, accel: Accel, memoryMiB: number, serialLog: string): Options {
  return {
    machine: { head: board, props: { accel } },
    m: memoryMiB,
    nodefaults: true,
    'no-user-config': true,
    display: 'none',
    serial: `file:${serialLog}`,
  };
}

/** What the guest's kernel is told: console, address, and (unikraft) the program's arguments. */
export function kernelCommandLine(guest: QemuGuest): string {
  const { ip, prefix, gateway } = guest.network;
  if (guest.kind === 'unikraft') {
    // Without the ` -- ` separator Unikraft parses no parameters at all, so it is always there.
    return [guest.name, `netdev.ip=${ip}/${prefix}:${gateway}:::`, '--', ...guest.programArgs].join(' ');
  }
  const words = ['console=ttyS0', 'panic=-1', `uproxy.ip=${ip}/${prefix}`, `uproxy.gw=${gateway}`];
  if (guest.board === 'microvm' && guest.tscKhz !== undefined) words.push(`tsc_early_khz=${guest.tscKhz}`);
  return words.join(' ');
}

function cpuModel(guest: QemuGuest): string | undefined {
  // Recent Unikraft needs RDRAND/RDSEED, which QEMU's default TCG CPU model lacks. Under KVM
  // the default model is kept: `-cpu host` aborts QEMU on some nested hosts (MSR 0x10a).
  return guest.kind === 'unikraft' && guest.accel === 'tcg' ? 'max' : undefined;
}

function validate(guest: QemuGuest): void {
  const where = `machine "${guest.name}"`;
  if (guest.memoryMiB < MIN_MEMORY_MIB[guest.kind]) {
    throw new Error(`${where}: ${guest.memoryMiB} MiB is below the ${MIN_MEMORY_MIB[guest.kind]} MiB a ${guest.kind} guest needs to boot; raise its memory in the config`);
  }
  if (guest.kind === 'unikraft') {
    if (guest.board !== 'pc') throw new Error(`${where}: unikraft guests boot on the "pc" board only`);
    const bad = guest.programArgs.find((arg) => arg === '' || /[\s"']/.test(arg));
    if (bad !== undefined) {
      throw new Error(`${where}: argument ${JSON.stringify(bad)} cannot be passed on a Unikraft kernel command line (no spaces or quotes); put long configuration in a file in the initrd`);
    }
  } else if (guest.programArgs.length > 0) {
    throw new Error(`${where}: a microvm guest takes its program arguments from its initramfs, not the kernel command line`);
  }
  if (guest.kind === 'microvm' && guest.initrd === undefined) {
    throw new Error(`${where}: a microvm guest needs the initramfs uproxy builds for it`);
  }
  if (guest.board === 'microvm' && guest.accel === 'tcg' && guest.tscKhz === undefined) {
    throw new Error(`${where}: the microvm board hangs at random under TCG unless the kernel gets the host TSC frequency; pass tscKhz or use the "pc" board`);
  }
}
