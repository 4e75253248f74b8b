/**
 * The VM side of a fleet plan (qemu runtime), as plain data: each machine's address, MAC, tap,
 * program and arguments, its QEMU command line, and the network to create. The kernel and
 * the acceleration come in as inputs because finding them touches the host; everything else
 * follows from the config and the fleet plan alone.
 */
import { join } from 'node:path';
import type { CommandLine } from './argv.js';
import { planAddressing, type MachineAddress } from './addressing.js';
import { backendArgs, proxyArgs, type FleetPlan, type Role } from './plan.js';
import { qemuCommand, type Accel, type QemuGuest } from './qemu-command.js';
import { nftTableName, ownerMark, type NetworkPlan } from './network-plan.js';

export interface VmInputs {
  accel: Accel;
  kernel: string;
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
  /** The static binary that goes into the guest, and its arguments. */
  program: string;
  programArgs: string[];
  initrd: string;
  guest: QemuGuest;
  command: CommandLine;
}

export interface VmFleetPlan {
  network: NetworkPlan;
  gateway: string;
  /** Backends first, the proxy last: it health-checks them as soon as it starts. */
  machines: VmMachinePlan[];
  proxy: { listen: string; admin: string };
}

/** `make static` builds this next to the app's normal binary (see templates/backend/Makefile, proxy/Makefile). */
export function staticBinary(binary: string): string {
  return `${binary}-static`;
}

export function planVmFleet(plan: FleetPlan, inputs: VmInputs): VmFleetPlan {
  const { config } = plan;
  const addressing = planAddressing(plan.fleet, config.network.subnet, plan.proxy.name, plan.backends.map((b) => b.name));
  // Every machine has its own address, so a port of 0 ("pick a free one") needs no picking.
  const backendPort = config.backends.port || 8080;
  const proxyPort = config.proxy.port || 8080;
  const adminPort = config.proxy.adminPort || 8081;
  const vmDir = join(inputs.stateDir, 'vm');
  const logDir = join(inputs.stateDir, 'logs');

  const machine = (name: string, role: Role, address: MachineAddress, serves: string, program: string, programArgs: string[]): VmMachinePlan => {
    const guest: QemuGuest = {
      name: `${plan.fleet}-${name}`,
      kind: config.qemu.guest,
      accel: inputs.accel,
      board: config.qemu.board,
      memoryMiB: config.qemu.memoryMiB,
      kernel: inputs.kernel,
      initrd: join(vmDir, `${name}.cpio`),
      network: { tap: address.tap, mac: address.mac, ip: address.ip, prefix: addressing.subnet.prefix, gateway: addressing.gateway },
      programArgs: config.qemu.guest === 'unikraft' ? programArgs : [],
      tscKhz: inputs.tscKhz,
      qmpSocket: join(vmDir, `${name}.qmp`),
      serialLog: join(logDir, `${name}.log`),
      pidFile: join(vmDir, `${name}.pid`),
      daemonize: true,
    };
    return { name, role, address, serves, program, programArgs, initrd: join(vmDir, `${name}.cpio`), guest, command: qemuCommand(guest) };
  };

  const backends = plan.backends.map((b, i) => {
    const address = addressing.backends[i]!;
    const serves = `${address.ip}:${backendPort}`;
    return machine(b.name, 'backend', address, serves, staticBinary(b.app.binary), backendArgs(b.name, serves));
  });
  const listeners = { listen: `0.0.0.0:${proxyPort}`, admin: `${addressing.proxy.ip}:${adminPort}` };
  const endpoints = backends.map((b) => ({ name: b.name, address: b.serves }));
  const proxyServes = `${addressing.proxy.ip}:${proxyPort}`;
  const proxy = machine(plan.proxy.name, 'proxy', addressing.proxy, proxyServes, staticBinary(plan.proxy.app.binary), proxyArgs(config, listeners, endpoints));

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
    proxy: { listen: proxyServes, admin: listeners.admin },
  };
}

function parsePublish(publish: string, proxyIp: string, proxyPort: number): NetworkPlan['publish'] {
  const colon = publish.lastIndexOf(':');
  const port = Number(publish.slice(colon + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`proxy.publish "${publish}": the port must be 1-65535`);
  return { listenAddress: publish.slice(0, colon), port, target: { ip: proxyIp, port: proxyPort } };
}
