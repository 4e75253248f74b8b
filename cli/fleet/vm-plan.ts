/**
 * The VM side of a fleet plan (qemu runtime), as plain data: each machine's address, MAC, tap,
 * program and arguments, its QEMU command line, and the network to create. The kernels and
 * the acceleration come in as inputs because finding them touches the host; everything else
 * follows from the config and the fleet plan alone.
 *
 * Two guest kinds: `microvm` boots one Linux kernel with an initramfs uproxy writes per
 * machine (the static program, its arguments, an init); `unikraft` boots each app's own
 * kraft-built kernel (and its initrd, if it has one) with the arguments on the kernel
 * command line. An HTTPS proxy finds its certificate and key in its initrd either way
 * (GUEST_PATHS.certificate): for a unikraft proxy uproxy writes one, adding the file to the
 * kraft-built initrd when there is one.
 */
import { join } from 'node:path';
import { machinePorts, type HttpsMode } from '../config/schema.js';
import { UserError } from '../errors.js';
import type { CommandLine } from './argv.js';
import { planAddressing, type MachineAddress } from './addressing.js';
import { backendArgs, instanceName, proxyArgs, type FleetPlan, type Role } from './plan.js';
import { kernelCommandLineProblem } from './kraft-plan.js';
import { qemuCommand, type Accel, type QemuGuest } from './qemu-command.js';
import { nftTableName, ownerMark, type NetworkPlan } from './network-plan.js';
import { GUEST_PATHS } from './guest-paths.js';

/** The files of one app's `kraft build`: the kernel, and the initrd when its Kraftfile has a rootfs. */
export interface UnikraftBuild {
  kernel: string;
  initrd?: string;
}

export interface VmInputs {
  accel: Accel;
  /** `microvm` guests: the Linux kernel every machine boots. */
  kernel?: string;
  /** `unikraft` guests: each app's kraft build. */
  unikraft?: Readonly<Record<Role, UnikraftBuild>>;
  /** `.uproxy` of the project: logs in `logs/`, sockets, pidfiles and initramfs in `vm/`. */
  stateDir: string;
  tscKhz?: number;
}

export interface VmMachinePlan {
  name: string;
  role: Role;
  address: MachineAddress;
  /** `ip:port` it serves on (the client port for the proxy). */
  serves: string;
  /** The program's arguments: in the initramfs (microvm) or on the kernel command line (unikraft). */
  programArgs: string[];
  /**
   * The initrd uproxy writes for this machine (mode 0600: it may hold a key): a microvm guest's
   * whole boot image, with its static `program`; for a unikraft proxy serving HTTPS, the
   * kraft-built initrd (`base`, when the app has one) plus the certificate. `certificate` is
   * the host's PEM file (chain and key) that goes in as GUEST_PATHS.certificate.
   */
  initramfs?: { path: string; program?: string; base?: string; certificate?: string };
  guest: QemuGuest;
  command: CommandLine;
}

export interface VmFleetPlan {
  network: NetworkPlan;
  gateway: string;
  /** Backends first, the proxy last: it health-checks them as soon as it starts. */
  machines: VmMachinePlan[];
  proxy: { listen: string; admin: string; tls?: HttpsMode };
}

/** `make static` builds this next to the app's normal binary (see templates/backend/Makefile, proxy/Makefile). */
export function staticBinary(binary: string): string {
  return `${binary}-static`;
}

export function planVmFleet(plan: FleetPlan, inputs: VmInputs): VmFleetPlan {
  const { config } = plan;
  const addressing = planAddressing(plan.fleet, config.network.subnet, plan.proxy.name, plan.backends.map((b) => b.name));
  const { backend: backendPort, proxy: proxyPort, admin: adminPort } = machinePorts(config);
  const vmDir = join(inputs.stateDir, 'vm');
  const logDir = join(inputs.stateDir, 'logs');

  const kind = config.qemu.guest;
  const machine = (name: string, role: Role, address: MachineAddress, serves: string, program: string, programArgs: string[]): VmMachinePlan => {
    const certificate = role === 'proxy' ? plan.proxyCertFile ?? undefined : undefined;
    const path = join(vmDir, `${name}.cpio`);
    const built = kind === 'unikraft' ? required(inputs.unikraft, 'the kraft builds')[role] : undefined;
    const initramfs = kind === 'microvm'
      ? { path, program, certificate }
      : certificate === undefined ? undefined : { path, base: built?.initrd, certificate };
    const boot = built ? { kernel: built.kernel, initrd: initramfs?.path ?? built.initrd } : { kernel: required(inputs.kernel, 'a Linux kernel'), initrd: path };
    const guest: QemuGuest = {
      name: instanceName(plan.fleet, name),
      kind,
      accel: inputs.accel,
      board: config.qemu.board,
      memoryMiB: kind === 'microvm' ? config.qemu.memoryMiB : role === 'proxy' ? config.unikraft.proxyMemoryMiB : config.unikraft.backendMemoryMiB,
      kernel: boot.kernel,
      initrd: boot.initrd,
      network: { tap: address.tap, mac: address.mac, ip: address.ip, prefix: addressing.subnet.prefix, gateway: addressing.gateway },
      programArgs: kind === 'unikraft' ? programArgs : [],
      tscKhz: inputs.tscKhz,
      qmpSocket: join(vmDir, `${name}.qmp`),
      serialLog: join(logDir, `${name}.log`),
      pidFile: join(vmDir, `${name}.pid`),
      // Under its supervisor (restart on-failure) QEMU stays in the foreground, for s6 to watch.
      daemonize: config.restart !== 'on-failure',
    };
    if (kind === 'unikraft') {
      const problem = kernelCommandLineProblem({ name, instance: guest.name, ip: address.ip, args: programArgs }, 'native');
      if (problem) throw new UserError(`${problem}: use fewer backends or tokens, or microvm guests`);
    }
    return { name, role, address, serves, programArgs, initramfs, guest, command: qemuCommand(guest) };
  };

  const backends = plan.backends.map((b, i) => {
    const address = addressing.backends[i]!;
    const serves = `${address.ip}:${backendPort}`;
    return machine(b.name, 'backend', address, serves, staticBinary(b.app.binary), backendArgs(b.name, serves));
  });
  const listeners = { listen: `0.0.0.0:${proxyPort}`, admin: `${addressing.proxy.ip}:${adminPort}`, backendNetwork: config.network.subnet };
  const endpoints = backends.map((b) => ({ name: b.name, address: b.serves }));
  const proxyServes = `${addressing.proxy.ip}:${proxyPort}`;
  const certFile = plan.proxyCertFile === null ? null : `/${GUEST_PATHS.certificate}`;
  const proxy = machine(plan.proxy.name, 'proxy', addressing.proxy, proxyServes, staticBinary(plan.proxy.app.binary), proxyArgs(config, listeners, endpoints, certFile));

  const publish = config.proxy.publish === undefined ? undefined : parsePublish(config.proxy.publish, addressing.proxy.ip, proxyPort);
  return {
    network: {
      owner: ownerMark(plan.fleet),
      bridge: { name: config.network.bridge, address: `${addressing.gateway}/${addressing.subnet.prefix}` },
      taps: [...backends, proxy].map((m) => m.address.tap),
      publish,
      nftTable: nftTableName(plan.fleet),
    },
    gateway: addressing.gateway,
    machines: [...backends, proxy],
    proxy: { listen: proxyServes, admin: listeners.admin, ...(config.proxy.tls.mode === 'off' ? {} : { tls: config.proxy.tls.mode }) },
  };
}

/**
 * The addresses clients reach the proxy at besides loopback, which its certificate must name:
 * the host address `proxy.publish` names (all of them for 0.0.0.0, which no certificate can
 * list: use proxy.tls.names) and, on the VM runtimes, the proxy's address on the bridge.
 */
export function proxyAddresses(plan: FleetPlan): string[] {
  const { config } = plan;
  const published = config.proxy.publish?.slice(0, config.proxy.publish.lastIndexOf(':'));
  const publishAddress = published === undefined || published === '0.0.0.0' ? [] : [published];
  if (plan.runtime === 'host') return publishAddress;
  const addressing = planAddressing(plan.fleet, config.network.subnet, plan.proxy.name, plan.backends.map((b) => b.name));
  return [addressing.proxy.ip, ...publishAddress];
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`planVmFleet: the inputs lack ${what}, which this guest kind boots`);
  return value;
}

function parsePublish(publish: string, proxyIp: string, proxyPort: number): NetworkPlan['publish'] {
  const colon = publish.lastIndexOf(':');
  const port = Number(publish.slice(colon + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UserError(`proxy.publish "${publish}": the port must be 1-65535`);
  return { listenAddress: publish.slice(0, colon), port, target: { ip: proxyIp, port: proxyPort } };
}
