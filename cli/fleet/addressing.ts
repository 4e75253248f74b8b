/**
 * Addresses, MACs and tap names for the machines of a VM fleet, derived only from the fleet
 * name, the machine names and the subnet, so that planning the same config twice gives the
 * same network and `down` after a crash can name exactly what `up` created.
 */
import { createHash } from 'node:crypto';
import { UserError } from '../errors.js';

export interface Subnet {
  /** Network address, e.g. `172.44.0.0`. */
  network: string;
  prefix: number;
}

export interface MachineAddress {
  machine: string;
  ip: string;
  mac: string;
  tap: string;
}

export interface FleetAddressing {
  subnet: Subnet;
  /** The host's address on the bridge: the machines' gateway. */
  gateway: string;
  proxy: MachineAddress;
  backends: MachineAddress[];
}

/** Linux limits interface names to IFNAMSIZ - 1 characters. */
export const MAX_INTERFACE_NAME = 15;

/**
 * Parses `a.b.c.d/prefix` (the address may be any host in the subnet, as in `172.44.0.1/24`).
 * Throws with the offending text and the expected form.
 */
export function parseSubnet(cidr: string): Subnet {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(cidr.trim());
  const prefix = match ? Number(match[2]) : NaN;
  if (!match || prefix < 8 || prefix > 29) {
    throw new UserError(`invalid subnet "${cidr}": expected an IPv4 network such as 172.44.0.1/24 (prefix 8 to 29)`);
  }
  const address = ipToNumber(match[1]!, cidr);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: numberToIp((address & mask) >>> 0), prefix };
}

export function hostCount(subnet: Subnet): number {
  return 2 ** (32 - subnet.prefix) - 2;
}

/** The n-th host address of the subnet, n counting from 1 (the gateway). */
export function hostAddress(subnet: Subnet, n: number): string {
  if (n < 1 || n > hostCount(subnet)) {
    throw new UserError(`subnet ${subnet.network}/${subnet.prefix} has no host number ${n}: it holds ${hostCount(subnet)} hosts; use a larger subnet`);
  }
  return numberToIp(ipToNumber(subnet.network, subnet.network) + n);
}

/** Gateway .1, proxy .2, backends .3 onwards, in the order given. */
export function planAddressing(fleet: string, subnetCidr: string, proxy: string, backends: readonly string[]): FleetAddressing {
  const subnet = parseSubnet(subnetCidr);
  const names = [proxy, ...backends];
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined) throw new UserError(`machine name "${duplicate}" is used twice in fleet "${fleet}": machine names must be unique`);
  if (names.length + 1 > hostCount(subnet)) {
    throw new UserError(`subnet ${subnetCidr} holds ${hostCount(subnet)} hosts but fleet "${fleet}" needs ${names.length + 1} (gateway, proxy, ${backends.length} backends): use a shorter prefix`);
  }
  const machine = (name: string, n: number): MachineAddress => ({
    machine: name,
    ip: hostAddress(subnet, n),
    mac: machineMac(fleet, name),
    tap: tapName(fleet, name),
  });
  const addressing = {
    subnet,
    gateway: hostAddress(subnet, 1),
    proxy: machine(proxy, 2),
    backends: backends.map((name, i) => machine(name, i + 3)),
  };
  const taps = [addressing.proxy, ...addressing.backends].map((m) => m.tap);
  const clash = taps.find((tap, i) => taps.indexOf(tap) !== i);
  if (clash !== undefined) throw new UserError(`two machines of fleet "${fleet}" map to tap "${clash}": give them names that differ in letters or digits`);
  return addressing;
}

/**
 * A locally administered unicast MAC (first octet `x2`, `x6`, `xA` or `xE`) from a hash of
 * fleet and machine: stable across runs so guests keep their identity, distinct across fleets.
 */
export function machineMac(fleet: string, machine: string): string {
  const bytes = digest(`${fleet}/${machine}`).subarray(0, 6);
  bytes[0] = (bytes[0]! & 0xfc) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * `u<4 hex of the fleet>-<machine>`: the hash keeps two fleets' taps apart, the machine name
 * keeps `ip link` readable. Machine names too long for the 15-character limit lose their
 * non-alphanumerics, then fall back to a hash.
 */
export function tapName(fleet: string, machine: string): string {
  const prefix = `u${digest(fleet).toString('hex').slice(0, 4)}-`;
  const room = MAX_INTERFACE_NAME - prefix.length;
  const plain = machine.replace(/[^A-Za-z0-9_-]/g, '');
  const compact = plain.replace(/[^A-Za-z0-9]/g, '');
  const suffix = plain === machine && plain.length <= room ? plain
    : compact.length > 0 && compact.length <= room ? compact
    : digest(machine).toString('hex').slice(0, room);
  return prefix + suffix;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function ipToNumber(ip: string, context: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new UserError(`invalid IPv4 address in "${context}"`);
  }
  return (((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0);
}

function numberToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
