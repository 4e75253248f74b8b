/**
 * A fleet's network as plain data (bridge, taps, publish rule) and the `ip` and `nft` command
 * lines that create and remove it. Pure, like the rest of the plan: cli/net/ runs these
 * commands and reads the host's network. Every link uproxy creates carries an alias
 * (`ifalias`) naming its owner, which is how later runs tell our bridge and taps from
 * anything else with the same name.
 */
import { commandLine, renderOptions, type CommandLine } from './argv.js';

export interface BridgeSpec {
  name: string;
  /** The host's address on the bridge with its prefix, e.g. `172.44.0.1/24`. */
  address: string;
}

export interface PublishSpec {
  /** Address clients connect to on the host; undefined means every address (`0.0.0.0`). */
  listenAddress?: string;
  port: number;
  target: { ip: string; port: number };
}

export interface NetworkPlan {
  /** The ownership mark, `uproxy:<fleet>`; see ownerMark. */
  owner: string;
  bridge: BridgeSpec;
  taps: readonly string[];
  publish?: PublishSpec;
  /** nftables table (family `ip`) holding the publish rules, owned by uproxy. */
  nftTable: string;
}

export function ownerMark(fleet: string): string {
  return `uproxy:${fleet}`;
}

/** nftables identifiers allow letters, digits and underscores. */
export function nftTableName(fleet: string): string {
  return `uproxy_${fleet.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

const ip = (...parts: (readonly string[])[]): CommandLine => commandLine('ip', ...parts);
const keywords = (options: Record<string, string>): string[] => renderOptions(options, 'keyword');

export function createBridge(bridge: BridgeSpec, owner: string): CommandLine[] {
  return [
    ip(['link', 'add'], keywords({ name: bridge.name, type: 'bridge' })),
    ip(['link', 'set'], keywords({ dev: bridge.name, alias: owner })),
  ];
}

export function addBridgeAddress(bridge: BridgeSpec): CommandLine {
  return ip(['addr', 'add', bridge.address], keywords({ dev: bridge.name }));
}

export function linkUp(name: string): CommandLine {
  return ip(['link', 'set'], keywords({ dev: name }), ['up']);
}

export function createTap(tap: string, bridge: string, owner: string): CommandLine[] {
  return [
    ip(['tuntap', 'add'], keywords({ dev: tap, mode: 'tap' })),
    ip(['link', 'set'], keywords({ dev: tap, alias: owner, master: bridge })),
    linkUp(tap),
  ];
}

export function deleteLink(name: string): CommandLine {
  return ip(['link', 'del'], keywords({ dev: name }));
}

export const listLinks = (): CommandLine => ip(['-json', '-details', 'link', 'show']);
export const listAddresses = (): CommandLine => ip(['-json', 'addr', 'show']);

const nft = (...words: string[]): CommandLine => commandLine('nft', words);

/**
 * Only the proxy's client port is reachable from beyond the host: a DNAT rule sends it to the
 * proxy, and the forward chain drops every other connection into the bridge, so backends and
 * the admin listener stay host-only even for a client that routes to the subnet.
 */
export function createPublishTable(table: string, bridge: string, publish: PublishSpec): CommandLine[] {
  const destination = publish.listenAddress === undefined || publish.listenAddress === '0.0.0.0'
    ? []
    : ['ip', 'daddr', publish.listenAddress];
  return [
    nft('add', 'table', 'ip', table),
    nft('add', 'chain', 'ip', table, 'prerouting', '{ type nat hook prerouting priority dstnat ; policy accept ; }'),
    nft('add', 'rule', 'ip', table, 'prerouting', 'iifname', '!=', bridge, ...destination,
      'tcp', 'dport', String(publish.port), 'dnat', 'to', `${publish.target.ip}:${publish.target.port}`),
    nft('add', 'chain', 'ip', table, 'forward', '{ type filter hook forward priority filter ; policy accept ; }'),
    nft('add', 'rule', 'ip', table, 'forward', 'oifname', bridge, 'ct', 'state', 'established,related', 'accept'),
    nft('add', 'rule', 'ip', table, 'forward', 'oifname', bridge, 'ct', 'status', 'dnat', 'accept'),
    // Bridged traffic between machines may also pass this hook (br_netfilter): leave it alone.
    nft('add', 'rule', 'ip', table, 'forward', 'iifname', '!=', bridge, 'oifname', bridge, 'drop'),
  ];
}

export function deleteTable(table: string): CommandLine {
  return nft('delete', 'table', 'ip', table);
}

export const listTables = (): CommandLine => nft('-json', 'list', 'tables');

/** Every command `apply` would run on a host where none of the plan exists yet (for `--dry-run`). */
export function networkCommands(plan: NetworkPlan): CommandLine[] {
  return [
    ...createBridge(plan.bridge, plan.owner),
    addBridgeAddress(plan.bridge),
    linkUp(plan.bridge.name),
    ...plan.taps.flatMap((tap) => createTap(tap, plan.bridge.name, plan.owner)),
    ...(plan.publish ? createPublishTable(plan.nftTable, plan.bridge.name, plan.publish) : []),
  ];
}
