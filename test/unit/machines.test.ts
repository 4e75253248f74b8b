import { describe, expect, it } from 'vitest';
import type { MachineState } from '../../cli/fleet/state.js';
import { isUnchanged, planChanges, type Wanted } from '../../cli/runtimes/machines.js';

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
});
