/**
 * Brings a host's network to a fleet's plan and takes it away again. `applyNetwork` first
 * reads what exists and refuses, before changing anything, to touch a link or subnet that is
 * not ours; then it creates only what is missing, reporting each resource to `record` before
 * creating it so that `down` can remove it even if uproxy dies half-way.
 */
import { readFile } from 'node:fs/promises';
import type { CommandLine } from '../fleet/argv.js';
import { parseSubnet } from '../fleet/addressing.js';
import { UserError } from '../errors.js';
import { requireNetAdmin } from './capability.js';
import {
  addBridgeAddress, createBridge, createPublishTable, createTap, deleteLink, deleteTable, linkUp,
  listAddresses, listLinks, listTables, type NetworkPlan,
} from '../fleet/network-plan.js';
import type { Runner } from './exec.js';

export type NetworkResource =
  | { kind: 'bridge'; name: string }
  | { kind: 'tap'; name: string }
  | { kind: 'nft-table'; name: string };

interface Link {
  ifname: string;
  ifalias?: string;
  master?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export interface NetworkState {
  links: Map<string, Link>;
  tables: Set<string>;
}

export async function readNetworkState(run: Runner): Promise<NetworkState> {
  const links = JSON.parse(await run(listLinks())) as Link[];
  const addresses = JSON.parse(await run(listAddresses())) as Link[];
  const byName = new Map(links.map((link) => [link.ifname, link]));
  for (const entry of addresses) {
    const link = byName.get(entry.ifname);
    if (link) link.addr_info = entry.addr_info;
  }
  return { links: byName, tables: await readTables(run) };
}

async function readTables(run: Runner): Promise<Set<string>> {
  const parsed = JSON.parse(await run(listTables())) as { nftables: { table?: { family: string; name: string } }[] };
  return new Set(parsed.nftables.flatMap((item) => (item.table?.family === 'ip' ? [item.table.name] : [])));
}

/** Everything in the host's network that stops the plan, as one message per problem. */
export function findClashes(plan: NetworkPlan, state: NetworkState): string[] {
  const problems: string[] = [];
  const ours = (link: Link) => link.ifalias === plan.owner;
  const bridge = state.links.get(plan.bridge.name);
  if (bridge && !ours(bridge)) {
    problems.push(`a network interface named "${plan.bridge.name}" already exists and was not created by this fleet (its alias is "${bridge.ifalias ?? ''}", expected "${plan.owner}"): set "network.bridge" in uproxy.json to another name`);
  } else if (bridge && bridge.linkinfo?.info_kind !== 'bridge') {
    problems.push(`"${plan.bridge.name}" is marked as ours but is not a bridge: delete it with \`ip link del dev ${plan.bridge.name}\``);
  }
  for (const tap of plan.taps) {
    const link = state.links.get(tap);
    if (link && !ours(link)) problems.push(`a network interface named "${tap}" already exists and was not created by this fleet: rename the machine or remove that interface`);
  }
  const wanted = parseSubnet(plan.bridge.address);
  for (const link of state.links.values()) {
    if (link.ifname === plan.bridge.name && ours(link)) continue;
    for (const address of link.addr_info ?? []) {
      if (address.family !== 'inet') continue;
      if (overlaps(wanted, parseSubnet(`${address.local}/${Math.max(8, Math.min(29, address.prefixlen))}`), address.prefixlen)) {
        problems.push(`subnet ${plan.bridge.address} overlaps ${address.local}/${address.prefixlen} on "${link.ifname}", which is not ours: set "network.subnet" in uproxy.json to a free range`);
      }
    }
  }
  return problems;
}

function overlaps(a: { network: string; prefix: number }, b: { network: string }, bPrefix: number): boolean {
  const shortest = Math.min(a.prefix, bPrefix);
  const mask = shortest === 0 ? 0 : (0xffffffff << (32 - shortest)) >>> 0;
  const number = (ip: string) => ip.split('.').reduce((n, part) => (n << 8) + Number(part), 0) >>> 0;
  return ((number(a.network) & mask) >>> 0) === ((number(b.network) & mask) >>> 0);
}

export interface ApplyOptions {
  run: Runner;
  /** Called before a resource is created: the caller writes it to the state file. */
  record: (resource: NetworkResource) => Promise<void>;
  /** Checked unless false: tests that already run inside a namespace as root may skip it. */
  checkCapability?: boolean;
  /** Reads `net.ipv4.ip_forward` where the commands run; publishing needs it on. */
  ipForwarding?: () => Promise<boolean>;
}

/** Creates what is missing; returns the commands it ran. */
export async function applyNetwork(plan: NetworkPlan, options: ApplyOptions): Promise<CommandLine[]> {
  if (options.checkCapability !== false) requireNetAdmin();
  const state = await readNetworkState(options.run);
  const problems = findClashes(plan, state);
  if (plan.publish && !(await (options.ipForwarding ?? hostIpForwarding)())) {
    problems.push('publishing the proxy port needs IPv4 forwarding: run `sysctl -w net.ipv4.ip_forward=1` (or drop "proxy.publish")');
  }
  if (problems.length > 0) throw new UserError(`cannot set up the network for this fleet:\n- ${problems.join('\n- ')}`);

  const ran: CommandLine[] = [];
  const run = async (command: CommandLine) => {
    ran.push(command);
    await options.run(command);
  };
  const bridge = state.links.get(plan.bridge.name);
  if (!bridge) {
    await options.record({ kind: 'bridge', name: plan.bridge.name });
    for (const command of createBridge(plan.bridge, plan.owner)) await run(command);
  }
  const [gatewayIp, prefix] = plan.bridge.address.split('/');
  if (!bridge?.addr_info?.some((a) => a.local === gatewayIp && String(a.prefixlen) === prefix)) await run(addBridgeAddress(plan.bridge));
  await run(linkUp(plan.bridge.name));
  for (const tap of plan.taps) {
    if (state.links.has(tap)) continue;
    await options.record({ kind: 'tap', name: tap });
    for (const command of createTap(tap, plan.bridge.name, plan.owner)) await run(command);
  }
  if (plan.publish) {
    // Our table holds nothing else, so replacing it whole is the idempotent way to update it.
    await options.record({ kind: 'nft-table', name: plan.nftTable });
    if (state.tables.has(plan.nftTable)) await run(deleteTable(plan.nftTable));
    for (const command of createPublishTable(plan.nftTable, plan.bridge.name, plan.publish)) await run(command);
  }
  return ran;
}

/**
 * Removes recorded resources that still exist and still carry our mark (taps before the
 * bridge); anything already gone is fine, so this can run again after a crash or a failure.
 */
export async function removeNetwork(resources: readonly NetworkResource[], owner: string, run: Runner): Promise<CommandLine[]> {
  const state = await readNetworkState(run);
  const ran: CommandLine[] = [];
  const rank = { tap: 0, bridge: 1, 'nft-table': 2 } as const;
  for (const resource of [...resources].sort((a, b) => rank[a.kind] - rank[b.kind])) {
    let command: CommandLine | undefined;
    if (resource.kind === 'nft-table') {
      if (state.tables.has(resource.name)) command = deleteTable(resource.name);
    } else if (state.links.get(resource.name)?.ifalias === owner) {
      command = deleteLink(resource.name);
      state.links.delete(resource.name);
    }
    if (command) {
      await run(command);
      ran.push(command);
    }
  }
  return ran;
}

async function hostIpForwarding(): Promise<boolean> {
  return (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim() === '1';
}
