import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uproxyConfig } from '../../cli/config/schema.js';
import { UserError } from '../../cli/errors.js';
import { toShell } from '../../cli/fleet/argv.js';
import { applyNetwork, readNetworkState, removeNetwork, type NetworkResource } from '../../cli/net/apply.js';
import type { NetworkPlan } from '../../cli/fleet/network-plan.js';
import { localRunner } from '../../cli/net/exec.js';
import { probeGuestBoots } from '../../cli/runtimes/probe.js';
import { addNamespace, deleteNamespace, inNamespace, netnsWrap, whyCannotRun } from './netns.js';
import { skipUnlessCi } from '../support/prerequisites.js';

// Needs root (namespaces, bridges, taps); CI runs as root. Everything happens in a namespace
// this file creates and deletes.
const skip = skipUnlessCi(whyCannotRun());
const ns = `upq-net-${process.pid}`;
const run = localRunner(netnsWrap(ns));

const plan: NetworkPlan = {
  owner: 'uproxy:nettest',
  bridge: { name: 'uproxy0', address: '172.44.0.1/24' },
  taps: ['uabcd-proxy', 'uabcd-backend-1'],
  publish: { port: 9090, target: { ip: '172.44.0.2', port: 8080 } },
  nftTable: 'uproxy_nettest',
};

describe.skipIf(skip !== undefined)(`bridge, taps and publish rules in a namespace${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(() => addNamespace(ns));
  afterAll(() => deleteNamespace(ns));

  it('creates the bridge, taps and nft table, recording each before creating it; a second apply changes no link', async () => {
    const recorded: NetworkResource[] = [];
    const ran = await applyNetwork(plan, { run, record: async (r) => void recorded.push(r), ipForwarding: async () => true });
    expect(recorded).toEqual([
      { kind: 'bridge', name: 'uproxy0' },
      { kind: 'tap', name: 'uabcd-proxy' },
      { kind: 'tap', name: 'uabcd-backend-1' },
      { kind: 'nft-table', name: 'uproxy_nettest' },
    ]);
    expect(ran.map(toShell)).toContain('ip link add name uproxy0 type bridge');
    const state = await readNetworkState(run);
    expect(state.links.get('uproxy0')?.addr_info?.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['172.44.0.1/24']);
    expect(state.links.get('uabcd-proxy')?.master).toBe('uproxy0');
    expect(inNamespace(ns, 'nft', 'list', 'table', 'ip', 'uproxy_nettest')).toMatch(/tcp dport 9090 dnat to 172\.44\.0\.2:8080/);

    const again = await applyNetwork(plan, { run, record: async () => {}, ipForwarding: async () => true });
    expect(again.map(toShell).filter((c) => c.startsWith('ip link add') || c.startsWith('ip tuntap') || c.startsWith('ip addr'))).toEqual([]);

    await removeNetwork(recorded, plan.owner, run);
    const after = await readNetworkState(run);
    expect([...after.links.keys()]).toEqual(['lo']);
    expect(after.tables.size).toBe(0);
  });

  it('refuses, before changing anything, a bridge name or subnet that is not ours', async () => {
    inNamespace(ns, 'ip', 'link', 'add', 'name', 'uproxy0', 'type', 'bridge');
    inNamespace(ns, 'ip', 'link', 'add', 'name', 'other0', 'type', 'bridge');
    inNamespace(ns, 'ip', 'addr', 'add', '172.44.0.9/16', 'dev', 'other0');
    const before = inNamespace(ns, 'ip', '-br', 'link');
    const refusal = await applyNetwork(plan, { run, record: async () => {}, ipForwarding: async () => true }).catch((error: Error) => error);
    expect(refusal).toBeInstanceOf(UserError);
    const { message } = refusal as Error;
    expect(message).toMatch(/"uproxy0" already exists and was not created by this fleet[\s\S]*overlaps 172\.44\.0\.9\/16 on "other0"/);
    // The keys the fixes name are real uproxy.json keys.
    expect(message).toContain('set "network.bridge" in uproxy.json to another name');
    expect(message).toContain('set "network.subnet" in uproxy.json to a free range');
    const hash = 'a'.repeat(64);
    const minimalConfig = { name: 'demo', proxy: { tokens: [{ name: 'default', sha256: hash }], adminTokenSha256: hash } };
    expect(uproxyConfig.safeParse({ ...minimalConfig, network: { bridge: 'uproxy1', subnet: '172.45.0.1/24' } }).success).toBe(true);
    expect(inNamespace(ns, 'ip', '-br', 'link')).toBe(before);

    // down never deletes what it did not create, even when the state names it.
    await removeNetwork([{ kind: 'bridge', name: 'uproxy0' }], plan.owner, run);
    expect(inNamespace(ns, 'ip', '-br', 'link')).toMatch(/^uproxy0 /m);
    inNamespace(ns, 'ip', 'link', 'del', 'uproxy0');
    inNamespace(ns, 'ip', 'link', 'del', 'other0');
  });

  it('says that publishing needs IPv4 forwarding, and how to turn it on', async () => {
    await expect(applyNetwork(plan, { run, record: async () => {}, ipForwarding: async () => false })).rejects.toThrow(/sysctl -w net\.ipv4\.ip_forward=1/);
  });
});

describe.skipIf(skip !== undefined)('the acceleration probe', () => {
  it('boots its probe guest under TCG', async () => {
    const result = await probeGuestBoots('tcg', 60_000);
    expect(result.detail).toMatch(/booted under tcg/);
    expect(result.ok).toBe(true);
  });
});
