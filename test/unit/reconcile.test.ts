import { describe, expect, it } from 'vitest';
import type { FleetState, MachineState } from '../../cli/fleet/state.js';
import type { Progress } from '../../cli/progress.js';
import type { DeadMachine } from '../../cli/runtimes/health-wait.js';
import {
  reconcile, WAIT_POLICY, type FleetProxy, type MachineDriver, type PlannedMachine, type Wanted,
} from '../../cli/runtimes/machines.js';
import type { RuntimeContext } from '../../cli/runtimes/runtime.js';

/**
 * The one `up` loop against a driver and a proxy that only record what they are asked to do,
 * each call with the state file as it was on disk at that moment: the journal must record a
 * machine before it is started or stopped.
 */

type Plan = PlannedMachine;
const want = (name: string, fingerprint: string): Wanted<Plan> => ({
  plan: { name, role: name === 'proxy' ? 'proxy' : 'backend' },
  fingerprint,
});
const running = (name: string, fingerprint: string, pid: number): MachineState => ({
  name,
  role: name === 'proxy' ? 'proxy' : 'backend',
  address: `10.0.0.${pid}:80`,
  pid,
  command: [`run-${name}`],
  log: `${name}.log`,
  fingerprint,
  status: 'running',
});

interface Fleet {
  calls: string[];
  /** The state file after each write. */
  saved: FleetState[];
  /** Machines (by name) whose start throws. */
  failStart: Set<string>;
  /** Fails the final health wait. */
  failWait?: string;
  /** Fails only the first health wait (the unchanged fleet's). */
  failFirstWait?: string;
  /** Backends the proxy reports down. */
  down: string[];
  /** Names the driver reports as no longer running. */
  dead: Set<string>;
  /** What the wait's dead-machine check returned. */
  deadSeen: (DeadMachine | undefined)[];
  state: FleetState;
  run(wanted: Wanted<Plan>[]): Promise<FleetState>;
}

function fleet(recorded: MachineState[]): Fleet {
  let nextPid = 100;
  const f: Fleet = {
    calls: [],
    saved: [],
    failStart: new Set(),
    down: [],
    dead: new Set(),
    deadSeen: [],
    state: { version: 1, fleet: 'f', runtime: 'host', proxy: { listen: '10.0.0.1:80', admin: '10.0.0.1:81' }, machines: recorded, resources: {} },
    run: (wanted) => reconcile({ state: f.state, wanted, driver, proxy, ctx, timeoutMs: 30_000 }),
  };
  /** The machine's status in the state file right now. */
  const onDisk = (name: string): string => f.saved.at(-1)?.machines.find((m) => m.name === name)?.status ?? 'absent';
  const progress: Progress = { step: (_title, work) => work(), log: () => {} };
  const ctx: RuntimeContext = {
    projectDir: '/nonexistent',
    progress,
    saveState: (s) => f.saved.push(structuredClone(s)),
    clearState: () => f.calls.push('clear state'),
    adminToken: () => 'token',
  };
  const driver: MachineDriver<Plan> = {
    record: (plan) => ({ address: `10.0.0.${plan.name}:80`, command: [`run-${plan.name}`], log: `${plan.name}.log` }),
    async start(plan, machine) {
      f.calls.push(`start ${plan.name} (${onDisk(plan.name)}, fingerprint ${machine.fingerprint})`);
      if (f.failStart.has(plan.name)) throw new Error(`${plan.name} did not start`);
      return nextPid++;
    },
    async stop(machines, options) {
      const proxyTimeout = machines.some((m) => m.role === 'proxy') && !options.force ? ` within ${options.timeoutMs} ms` : '';
      f.calls.push(`stop ${machines.map((m) => `${m.name} (${onDisk(m.name)})`).join(', ')}${options.force ? ' --force' : ''}${proxyTimeout}`);
    },
    async running() {
      return (m) => !f.dead.has(m.name);
    },
    async cleanup(state) {
      f.calls.push(`cleanup (${state.machines.length} left)`);
    },
  };
  const proxy: FleetProxy = {
    async sync() {
      f.calls.push('sync');
    },
    async roll(name, replace) {
      f.calls.push(`drain ${name}`);
      await replace();
      f.calls.push(`undrain ${name}`);
    },
    async waitHealthy(timeoutMs, dead, since) {
      f.calls.push(`wait ${timeoutMs} ms${since ? ` (a check passed since ${JSON.stringify(since)})` : ''}`);
      f.deadSeen.push(await dead());
      if (f.failFirstWait) {
        const failure = f.failFirstWait;
        delete f.failFirstWait;
        throw new Error(failure);
      }
      if (f.failWait) throw new Error(f.failWait);
    },
    async healthMarks() {
      return { 'backend-1': 7, 'backend-2': 5, 'backend-3': 3 };
    },
    async downBackends() {
      f.calls.push('ask which backends are down');
      return f.down;
    },
  };
  return f;
}

const summary = (state: FleetState): string[] => state.machines.map((m) => `${m.name}:${m.status}:${m.fingerprint}:${m.pid}`);
const allRunning = () => [running('backend-1', 'old', 1), running('backend-2', 'old', 2), running('backend-3', 'old', 3), running('proxy', 'p', 4)];
const changedBackends = () => [want('backend-1', 'new'), want('backend-2', 'new'), want('backend-3', 'new'), want('proxy', 'p')];

describe('reconcile', () => {
  it('starts a new fleet in plan order, records each machine as starting before its start, and waits', async () => {
    const f = fleet([]);
    const state = await f.run([want('backend-1', 'b'), want('backend-2', 'b'), want('proxy', 'p')]);
    expect(f.calls).toEqual([
      'start backend-1 (starting, fingerprint b)',
      'start backend-2 (starting, fingerprint b)',
      // The proxy started now has the whole list on its command line: no sync through its admin API.
      'start proxy (starting, fingerprint p)',
      'wait 30000 ms',
    ]);
    expect(summary(state)).toEqual(['backend-1:running:b:100', 'backend-2:running:b:101', 'proxy:running:p:102']);
    expect(f.saved.at(-1)).toEqual(state);
  });

  it('only syncs and checks an unchanged fleet, for the one unchanged-fleet wait', async () => {
    const f = fleet(allRunning());
    await f.run([want('backend-1', 'old'), want('backend-2', 'old'), want('backend-3', 'old'), want('proxy', 'p')]);
    expect(f.calls).toEqual(['sync', `wait ${WAIT_POLICY.unchangedMs} ms`]);
    expect(f.saved).toEqual([]);
  });

  it('rolls changed backends one at a time behind a proxy that stays, each stopped (recorded stopping) before its new one starts', async () => {
    const f = fleet(allRunning());
    const state = await f.run(changedBackends());
    expect(f.calls).toEqual([
      'sync',
      'drain backend-1', 'stop backend-1 (stopping)', 'start backend-1 (starting, fingerprint new)', 'undrain backend-1',
      'drain backend-2', 'stop backend-2 (stopping)', 'start backend-2 (starting, fingerprint new)', 'undrain backend-2',
      'drain backend-3', 'stop backend-3 (stopping)', 'start backend-3 (starting, fingerprint new)', 'undrain backend-3',
      'wait 30000 ms',
    ]);
    expect(summary(state)).toEqual(['proxy:running:p:4', 'backend-1:running:new:100', 'backend-2:running:new:101', 'backend-3:running:new:102']);
  });

  it('a failure halfway through a roll stops only the machine that failed: completed rolls stay, the rest keep running as they were', async () => {
    const f = fleet(allRunning());
    f.failStart.add('backend-2');
    await expect(f.run(changedBackends())).rejects.toThrow('backend-2 did not start');
    expect(f.calls).toEqual([
      'sync',
      'drain backend-1', 'stop backend-1 (stopping)', 'start backend-1 (starting, fingerprint new)', 'undrain backend-1',
      'drain backend-2', 'stop backend-2 (stopping)', 'start backend-2 (starting, fingerprint new)',
      // Rolled back: the new backend-2, recorded without a PID, so found by its command line.
      'stop backend-2 (stopping) --force',
      'cleanup (3 left)',
    ]);
    // The journal on disk: backend-1 rolled in, backend-2 gone (the next `up` starts it and
    // undrains it), backend-3 and the proxy untouched.
    expect(summary(f.saved.at(-1)!)).toEqual(['backend-3:running:old:3', 'proxy:running:p:4', 'backend-1:running:new:100']);
    expect(f.saved.at(-1)).toEqual(f.state);
  });

  it('a failed final wait stops what this up started (new backends), but keeps completed rolls', async () => {
    const f = fleet(allRunning());
    f.failWait = 'the fleet did not become healthy';
    await expect(f.run([want('backend-1', 'new'), want('backend-2', 'old'), want('backend-3', 'old'), want('backend-4', 'b'), want('proxy', 'p')]))
      .rejects.toThrow('the fleet did not become healthy');
    expect(f.calls).toEqual([
      'start backend-4 (starting, fingerprint b)',
      'sync',
      'drain backend-1', 'stop backend-1 (stopping)', 'start backend-1 (starting, fingerprint new)', 'undrain backend-1',
      'wait 30000 ms',
      'stop backend-4 (stopping) --force',
      'cleanup (4 left)',
    ]);
    expect(summary(f.saved.at(-1)!)).toEqual(['backend-2:running:old:2', 'backend-3:running:old:3', 'proxy:running:p:4', 'backend-1:running:new:101']);
  });

  it('a failed start of a new fleet stops everything it started and cleans up to nothing', async () => {
    const f = fleet([]);
    f.failStart.add('backend-2');
    await expect(f.run([want('backend-1', 'b'), want('backend-2', 'b'), want('proxy', 'p')])).rejects.toThrow('backend-2 did not start');
    expect(f.calls).toEqual([
      'start backend-1 (starting, fingerprint b)',
      'start backend-2 (starting, fingerprint b)',
      'stop backend-1 (stopping), backend-2 (stopping) --force',
      'cleanup (0 left)',
    ]);
    expect(f.saved.at(-1)!.machines).toEqual([]);
  });

  it('replaces dead machines before starting them, and stops dropped backends only after the wait', async () => {
    const f = fleet(allRunning());
    f.dead.add('backend-1');
    const state = await f.run([want('backend-1', 'old'), want('backend-2', 'old'), want('proxy', 'p')]);
    expect(f.calls).toEqual([
      'stop backend-1 (stopping)',
      'start backend-1 (starting, fingerprint old)',
      'sync',
      // The proxy kept running may still report the dead one up: the new one must pass a check.
      'wait 30000 ms (a check passed since {"backend-1":7})',
      'stop backend-3 (stopping)',
      'cleanup (3 left)',
    ]);
    expect(summary(state).map((s) => s.split(':')[0])).toEqual(['backend-2', 'proxy', 'backend-1']);
  });

  it('restarts every changed machine outright when the proxy restarts too, the proxy stopped first (it drains and closes its upstream connections)', async () => {
    const f = fleet(allRunning());
    await f.run([want('backend-1', 'new'), want('backend-2', 'old'), want('backend-3', 'old'), want('proxy', 'p-new')]);
    expect(f.calls).toEqual([
      `stop proxy (stopping) within ${WAIT_POLICY.proxyStopMs} ms`,
      'stop backend-1 (stopping)',
      'start backend-1 (starting, fingerprint new)',
      'start proxy (starting, fingerprint p-new)',
      'wait 30000 ms',
    ]);
  });

  it('the final wait learns of a machine that died, with its log', async () => {
    const f = fleet([]);
    const up = f.run([want('backend-1', 'b'), want('proxy', 'p')]);
    // It dies after the plan was made (the driver was asked first thing), before the wait.
    f.dead.add('backend-1');
    await up;
    expect(f.deadSeen).toEqual([{ what: 'machine backend-1 stopped right after it was started', log: 'backend-1.log' }]);
  });

  it('replaces the backends an unchanged fleet still reports down after the health wait (their machines run), then waits again', async () => {
    const f = fleet(allRunning());
    f.failFirstWait = 'the fleet did not become healthy within 10 s: not up yet: backend-2 (down)';
    f.down = ['backend-2'];
    const state = await f.run([want('backend-1', 'old'), want('backend-2', 'old'), want('backend-3', 'old'), want('proxy', 'p')]);
    expect(f.calls).toEqual([
      'sync',
      `wait ${WAIT_POLICY.unchangedMs} ms`,
      'ask which backends are down',
      'stop backend-2 (stopping)',
      'start backend-2 (starting, fingerprint old)',
      'sync',
      'wait 30000 ms (a check passed since {"backend-2":5})',
    ]);
    expect(summary(state)).toEqual(['backend-1:running:old:1', 'backend-3:running:old:3', 'proxy:running:p:4', 'backend-2:running:old:100']);
  });

  it('an unchanged fleet whose proxy reports no backend down fails the health wait as before', async () => {
    const f = fleet(allRunning());
    f.failFirstWait = 'the proxy did not answer';
    await expect(f.run([want('backend-1', 'old'), want('backend-2', 'old'), want('backend-3', 'old'), want('proxy', 'p')])).rejects.toThrow('the proxy did not answer');
    expect(f.calls).toEqual(['sync', `wait ${WAIT_POLICY.unchangedMs} ms`, 'ask which backends are down']);
  });

  it('a replacement proxy that does not become healthy keeps running (with the backends that replaced others): the fleet is never left without a proxy', async () => {
    const f = fleet(allRunning());
    f.failWait = 'the fleet did not become healthy';
    const up = f.run([want('backend-1', 'new'), want('backend-2', 'old'), want('backend-3', 'old'), want('backend-4', 'b'), want('proxy', 'p-new')]);
    await expect(up).rejects.toThrow('the fleet did not become healthy');
    await expect(up).rejects.toMatchObject({ details: [expect.stringContaining('the new proxy keeps running')] });
    expect(f.calls).toEqual([
      `stop proxy (stopping) within ${WAIT_POLICY.proxyStopMs} ms`,
      'stop backend-1 (stopping)',
      'start backend-1 (starting, fingerprint new)',
      'start backend-4 (starting, fingerprint b)',
      'start proxy (starting, fingerprint p-new)',
      'wait 30000 ms',
      // Only the new backend-4 had no machine before: it goes; the proxy and backend-1 stay.
      'stop backend-4 (stopping) --force',
      'cleanup (4 left)',
    ]);
    expect(summary(f.saved.at(-1)!)).toEqual(['backend-2:running:old:2', 'backend-3:running:old:3', 'backend-1:running:new:100', 'proxy:running:p-new:102']);
  });

  it('a replacement proxy that died is not kept', async () => {
    const f = fleet(allRunning());
    f.failWait = 'the fleet did not become healthy';
    const up = f.run([want('backend-1', 'old'), want('backend-2', 'old'), want('backend-3', 'old'), want('proxy', 'p-new')]);
    f.dead.add('proxy');
    await expect(up).rejects.toThrow('the fleet did not become healthy');
    expect(f.calls.slice(-2)).toEqual(['stop proxy (stopping) --force', 'cleanup (3 left)']);
  });
});
