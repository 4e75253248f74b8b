import { describe, expect, it } from 'vitest';
import type { MachineState } from '../../cli/fleet/state.js';
import { describeChanges, isUnchanged, planChanges, type PreviewedMachine, type Wanted } from '../../cli/runtimes/machines.js';

const machine = (name: string, fingerprint: string, pid: number): MachineState => ({
  name,
  role: name === 'proxy' ? 'proxy' : 'backend',
  address: `127.0.0.1:${9000 + pid}`,
  pid,
  command: [name],
  log: `${name}.log`,
  fingerprint,
  status: 'running',
});
const want = (name: string, fingerprint: string): Wanted<{ name: string }> => ({ plan: { name }, fingerprint });

describe('planChanges', () => {
  const recorded = [machine('backend-1', 'b-old', 1), machine('backend-2', 'b-old', 2), machine('proxy', 'p', 3)];
  const alive = (dead: number[] = []) => (m: MachineState): boolean => !dead.includes(m.pid!);

  it('rolls a changed backend that still runs behind a proxy that stays, instead of stopping it first', () => {
    const changes = planChanges(recorded, [want('backend-1', 'b-new'), want('backend-2', 'b-old'), want('proxy', 'p')], alive());
    expect(changes.rolled.map((r) => [r.machine.name, r.want.fingerprint])).toEqual([['backend-1', 'b-new']]);
    expect(changes.toStart).toEqual([]);
    expect(changes.replaced).toEqual([]);
    expect(isUnchanged(changes)).toBe(false);
  });

  it('replaces a backend that died: nothing of it is left to drain', () => {
    const changes = planChanges(recorded, [want('backend-1', 'b-new'), want('backend-2', 'b-old'), want('proxy', 'p')], alive([1]));
    expect(changes.rolled).toEqual([]);
    expect(changes.replaced.map((m) => m.name)).toEqual(['backend-1']);
    expect(changes.toStart.map((w) => w.plan.name)).toEqual(['backend-1']);
  });

  it('replaces changed backends outright when the proxy restarts too (it boots with the whole list)', () => {
    const changes = planChanges(recorded, [want('backend-1', 'b-new'), want('backend-2', 'b-new'), want('proxy', 'p-new')], alive());
    expect(changes.rolled).toEqual([]);
    expect(changes.replaced.map((m) => m.name)).toEqual(['backend-1', 'backend-2', 'proxy']);
    expect(changes.toStart.map((w) => w.plan.name)).toEqual(['backend-1', 'backend-2', 'proxy']);
  });

  it('starts new backends and removes dropped ones; an unchanged fleet is unchanged', () => {
    const scaled = planChanges(recorded, [want('backend-1', 'b-old'), want('backend-3', 'b-old'), want('proxy', 'p')], alive());
    expect(scaled.toStart.map((w) => w.plan.name)).toEqual(['backend-3']);
    expect(scaled.removed.map((m) => m.name)).toEqual(['backend-2']);
    expect(isUnchanged(planChanges(recorded, [want('backend-1', 'b-old'), want('backend-2', 'b-old'), want('proxy', 'p')], alive()))).toBe(true);
  });

  it('keeps the machines running as planned, and says whether the proxy stays', () => {
    const scaled = planChanges(recorded, [want('backend-1', 'b-new'), want('backend-2', 'b-old'), want('proxy', 'p')], alive());
    expect(scaled.kept.map((m) => m.name)).toEqual(['backend-2', 'proxy']);
    expect(scaled.proxyKept).toBe(true);
    const proxyChanged = planChanges(recorded, [want('backend-1', 'b-old'), want('proxy', 'p-new')], alive());
    expect(proxyChanged.proxyKept).toBe(false);
    expect(planChanges(recorded, [want('backend-1', 'b-old'), want('proxy', 'p')], alive([3])).proxyKept).toBe(false);
  });
});

describe('describeChanges (up --dry-run on a running fleet)', () => {
  const recorded = [machine('backend-1', 'b', 1), machine('backend-2', 'b', 2), machine('proxy', 'p', 3)];
  const alive = (dead: number[] = []) => (m: MachineState): boolean => !dead.includes(m.pid!);
  const planned = (name: string, fingerprint: string): Wanted<PreviewedMachine> => ({
    plan: { name, role: name === 'proxy' ? 'proxy' : 'backend', command: { file: `/bin/${name}`, args: ['--listen', 'x y'] } },
    fingerprint,
  });
  const fleet = (backends: number, backendPrint = (_n: number) => 'b', proxyPrint = 'p'): Wanted<PreviewedMachine>[] => [
    ...Array.from({ length: backends }, (_, i) => planned(`backend-${i + 1}`, backendPrint(i + 1))),
    planned('proxy', proxyPrint),
  ];

  it('says so when nothing changes; steps before the machines (a certificate renewal) are not nothing', () => {
    expect(describeChanges(recorded, fleet(2), alive())).toEqual(['already up to date: nothing to do']);
    expect(describeChanges(recorded, fleet(2), alive(), ['renew the proxy certificate'])).toEqual([
      'renew the proxy certificate',
      'keep backend-1, backend-2, proxy (unchanged)',
    ]);
  });

  it('starts a new backend and adds it through the admin API of the proxy that stays', () => {
    expect(describeChanges(recorded, fleet(3), alive())).toEqual([
      'keep backend-1, backend-2, proxy (unchanged)',
      "start backend-3 (new): /bin/backend-3 --listen 'x y'",
      'add backend-3 to the proxy through its admin API (POST /backends)',
      'wait until the proxy reports 3 backends up',
    ]);
  });

  it('drains a dropped backend through the proxy before stopping it', () => {
    expect(describeChanges(recorded, fleet(1), alive())).toEqual([
      'keep backend-1, proxy (unchanged)',
      'drain backend-2 and remove it from the proxy through its admin API (DELETE /backends/backend-2)',
      'wait until the proxy reports 1 backend up',
      'stop backend-2 (removed from the proxy)',
    ]);
  });

  it('rolls a changed backend, and restarts a dead one without draining it', () => {
    expect(describeChanges(recorded, fleet(2, (n) => (n === 2 ? 'b-new' : 'b')), alive())).toContain(
      "restart backend-2 (changed), drained first: /bin/backend-2 --listen 'x y'",
    );
    expect(describeChanges(recorded, fleet(2), alive([1]))).toEqual([
      'keep backend-2, proxy (unchanged)',
      "restart backend-1 (exited): /bin/backend-1 --listen 'x y'",
      'wait until the proxy reports 2 backends up',
    ]);
  });

  it('restarts a changed proxy with the whole list: no admin API call, a dropped backend is just stopped', () => {
    expect(describeChanges(recorded, fleet(1, () => 'b', 'p-new'), alive())).toEqual([
      'keep backend-1 (unchanged)',
      "restart proxy (changed), with the whole backend list: /bin/proxy --listen 'x y'",
      'wait until the proxy reports 1 backend up',
      "stop backend-2 (not in the new proxy's list)",
    ]);
  });
});
