/**
 * What every runtime's `up` and `down` share: which planned machines must be (re)started and
 * which recorded ones must go (`planChanges`), the one reconcile loop that carries the changes
 * out (`reconcile`), and the state writes around each start and stop (recorded before the side
 * effect, so `down` can finish what a killed `up` began). A runtime supplies only a
 * `MachineDriver`: how to start, stop and look at its machines, and what to clean up.
 */
import { toShell, type CommandLine } from '../fleet/argv.js';
import type { Role } from '../fleet/plan.js';
import { UserError } from '../errors.js';
import type { FleetState, MachineState } from '../fleet/state.js';
import type { DeadMachine, HealthMarks } from './health-wait.js';
import { isOurProcess } from './processes.js';
import type { DownOptions, MachineStatus, RuntimeContext } from './runtime.js';

/**
 * How `up` waits, the same for every runtime (only the overall `--timeout` default differs,
 * with how long a machine of that runtime takes to boot).
 */
export const WAIT_POLICY = {
  /**
   * Between two polls of the proxy's /stats in every wait: a small exchange the proxy answers
   * from memory, so ten a second cost nothing, while a host fleet, up in milliseconds, is not
   * held back by the polling.
   */
  pollMs: 100,
  /**
   * How often the runtime is asked, during the final wait, whether the machines still run: one
   * `kraft ps` is a Go program's start-up, so at most once a second; a machine that dies still
   * fails `up` within a second, with its log.
   */
  aliveCheckMs: 1_000,
  /**
   * The health check of a fleet `up` leaves unchanged: its machines already run, so this only
   * covers a backend the proxy is bringing back (two passing checks at the default 1 s interval)
   * and a slow /stats answer on a loaded machine. Longer means something is wrong: say so.
   */
  unchangedMs: 10_000,
  /** How long a machine `up` replaces, removes or rolls back gets to stop before it is killed. */
  stopMs: 5_000,
  /**
   * How long a proxy `up` replaces gets to drain and exit by itself: its default drain deadline
   * (`proxy.timeouts.shutdownMs`, 10 s) and a margin for the exit; only then is it stopped hard.
   */
  proxyStopMs: 15_000,
} as const;

/** A planned machine and the fingerprint that, when it changes, means a restart. */
export interface Wanted<P extends { name: string }> {
  plan: P;
  fingerprint: string;
}

export interface MachineChanges<P extends { name: string }> {
  /** Planned machines not running as planned: new, changed or dead, except the rolled ones. In plan order. */
  toStart: Wanted<P>[];
  /** Recorded machines that are planned but must be restarted: stopped before the new ones start. */
  replaced: MachineState[];
  /**
   * Changed backends still running behind a proxy that stays: restarted one at a time, drained
   * first (backend-sync.ts `rollBackend`), so the others carry the traffic meanwhile. A
   * backend that died has no requests to lose and is simply replaced.
   */
  rolled: { machine: MachineState; want: Wanted<P> }[];
  /** Recorded machines the plan no longer has (scaled down): stopped once the new fleet is healthy. */
  removed: MachineState[];
  /** Recorded machines running as planned: left alone. */
  kept: MachineState[];
  /** Whether the running proxy stays: then it learns its backend list through its admin API. */
  proxyKept: boolean;
}

/** `isRunning` says whether a recorded machine is still alive as recorded. */
export function planChanges<P extends { name: string }>(
  recorded: readonly MachineState[],
  wanted: readonly Wanted<P>[],
  isRunning: (machine: MachineState) => boolean,
): MachineChanges<P> {
  const wantOf = (m: MachineState): Wanted<P> | undefined => wanted.find((w) => w.plan.name === m.name);
  const isCurrent = (m: MachineState): boolean => {
    const want = wantOf(m);
    return want !== undefined && m.status === 'running' && m.fingerprint === want.fingerprint && isRunning(m);
  };
  const proxyKept = recorded.some((m) => m.role === 'proxy' && isCurrent(m));
  const restarted = recorded.filter((m) => !isCurrent(m) && wantOf(m) !== undefined);
  const rolls = (m: MachineState): boolean => proxyKept && m.role === 'backend' && m.status === 'running' && isRunning(m);
  return {
    toStart: wanted.filter((w) => !recorded.some((m) => m.name === w.plan.name && (isCurrent(m) || rolls(m)))),
    replaced: restarted.filter((m) => !rolls(m)),
    rolled: restarted.filter(rolls).map((machine) => ({ machine, want: wantOf(machine)! })),
    removed: recorded.filter((m) => wantOf(m) === undefined),
    kept: recorded.filter(isCurrent),
    proxyKept,
  };
}

export function isUnchanged(changes: MachineChanges<{ name: string }>): boolean {
  return changes.toStart.length === 0 && changes.rolled.length === 0 && changes.removed.length === 0;
}

/** A planned machine as `up --dry-run` shows it: with the command line it would start. */
export interface PreviewedMachine extends PlannedMachine {
  command: CommandLine;
}

/**
 * What `up` would change in a running fleet, one line a step, in the order `reconcile` takes
 * them, after the `steps` that come before it (builds, say): the same `planChanges` decides,
 * so the dry run cannot promise what `up` would not do.
 * Known only from the state and the runtime's look at its machines, not from the proxy: a
 * backend it lists as draining or reports down, or tokens edited in uproxy.json, are settled
 * by `up` without a line here.
 */
export function describeChanges<P extends PreviewedMachine>(
  recorded: readonly MachineState[],
  wanted: readonly Wanted<P>[],
  isRunning: (machine: MachineState) => boolean,
  steps: readonly string[] = [],
): string[] {
  const changes = planChanges(recorded, wanted, isRunning);
  if (isUnchanged(changes) && steps.length === 0) return ['already up to date: nothing to do'];
  const lines = [...steps, ...(changes.kept.length > 0 ? [`keep ${machineNames(inFleetOrder(changes.kept))} (unchanged)`] : [])];
  if (isUnchanged(changes)) return lines;
  const why = (m: MachineState): string => (m.status === 'running' && isRunning(m) ? 'changed' : 'exited');
  for (const { plan } of changes.toStart) {
    const old = changes.replaced.find((m) => m.name === plan.name);
    const what = old ? `restart ${plan.name} (${why(old)})` : `start ${plan.name} (new)`;
    const list = plan.role === 'proxy' ? ', with the whole backend list' : '';
    lines.push(`${what}${list}: ${toShell(plan.command)}`);
  }
  if (changes.proxyKept) {
    for (const { plan } of wanted) {
      if (plan.role === 'backend' && !recorded.some((m) => m.name === plan.name)) lines.push(`add ${plan.name} to the proxy through its admin API (POST /backends)`);
    }
    for (const m of changes.removed.filter((r) => r.role === 'backend')) lines.push(`drain ${m.name} and remove it from the proxy through its admin API (DELETE /backends/${m.name})`);
  }
  for (const { machine, want } of changes.rolled) lines.push(`restart ${machine.name} (changed), drained first: ${toShell(want.plan.command)}`);
  const backends = wanted.filter((w) => w.plan.role === 'backend').length;
  lines.push(`wait until the proxy reports ${backends} backend${backends === 1 ? '' : 's'} up`);
  if (changes.removed.length > 0) {
    const reason = changes.proxyKept ? 'removed from the proxy' : 'not in the new proxy\'s list';
    lines.push(`stop ${machineNames(changes.removed)} (${reason})`);
  }
  return lines;
}

/** Records a machine about to start (status `starting`, no PID yet) in place of any machine of that name. */
export function recordStarting(state: FleetState, starting: Omit<MachineState, 'pid' | 'status'>, ctx: RuntimeContext): MachineState {
  const machine: MachineState = { ...starting, pid: null, status: 'starting' };
  state.machines = [...state.machines.filter((m) => m.name !== machine.name), machine];
  ctx.saveState(state);
  return machine;
}

export function recordRunning(state: FleetState, machine: MachineState, pid: number | null, ctx: RuntimeContext): void {
  machine.pid = pid;
  machine.status = 'running';
  ctx.saveState(state);
}

export function recordStopping(state: FleetState, machines: readonly MachineState[], ctx: RuntimeContext): void {
  for (const m of machines) m.status = 'stopping';
  ctx.saveState(state);
}

export function forgetMachines(state: FleetState, machines: readonly MachineState[], ctx: RuntimeContext): void {
  state.machines = state.machines.filter((m) => !machines.includes(m));
  ctx.saveState(state);
}

/**
 * Backends by number, then the proxy: the order of every listing, whatever order the machines
 * were (re)started in (scaling adds backends after a proxy that keeps running).
 */
export function inFleetOrder<M extends { name: string; role: 'proxy' | 'backend' }>(machines: readonly M[]): M[] {
  const rank = (m: M): number => (m.role === 'proxy' ? Number.MAX_SAFE_INTEGER : Number(/\d+$/.exec(m.name)?.[0] ?? 0));
  return [...machines].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

/** Status of machines that are local processes (host processes, QEMU): alive when PID and command line still match. */
export function processStatuses(state: FleetState): MachineStatus[] {
  return inFleetOrder(state.machines).map((m): MachineStatus => ({
    name: m.name,
    role: m.role,
    address: m.address,
    pid: m.pid,
    state: m.status === 'running' ? (isOurProcess(m.pid, m.command) ? 'running' : 'exited') : m.status,
  }));
}

export function machineNames(machines: readonly MachineState[]): string {
  return machines.map((m) => m.name).join(', ');
}

/** A planned machine as the reconcile loop needs it: its name and role. */
export interface PlannedMachine {
  name: string;
  role: Role;
}

/** What a runtime supplies to `reconcile` and `stopMachines`: its machines' life cycle, nothing of the loop. */
export interface MachineDriver<P extends PlannedMachine> {
  /** What the state records of a planned machine before it starts: where it serves (a proxy: its admin API too), its exact command line, its log. */
  record(plan: P): Pick<MachineState, 'address' | 'admin' | 'command' | 'log'>;
  /** Starts a machine the state already records as `starting`; resolves to its PID (null: the runtime has none). */
  start(plan: P, machine: MachineState): Promise<number | null>;
  /** Stops these machines and tolerates ones already gone; the caller keeps the state. */
  stop(machines: readonly MachineState[], options: DownOptions): Promise<void>;
  /** One look at what runs (one `kraft ps`, say): whether a recorded machine still runs as recorded. */
  running(): Promise<(machine: MachineState) => boolean>;
  /**
   * Called after machines were stopped: removes what the remaining ones no longer use (a tap);
   * with none left, everything the fleet had (its network, files) and the state file.
   */
  cleanup(state: FleetState): Promise<void>;
}

/** The running proxy as `up` uses it: its backend list, one-at-a-time restarts, the health wait. */
export interface FleetProxy {
  /** Brings the running proxy's backend list in line with the plan (adds, drains and removes, undrains). */
  sync(): Promise<void>;
  /**
   * Restarts one running backend behind the proxy: drains it, runs `replace` (stop the old,
   * start the new), and resolves once the proxy reports the new one up.
   */
  roll(name: string, replace: () => Promise<void>): Promise<void>;
  /**
   * Resolves once the proxy reports every planned backend up; a machine `dead` returns fails the
   * wait. A backend in `since` must also have passed a health check since those counts.
   */
  waitHealthy(timeoutMs: number, dead: () => Promise<DeadMachine | undefined>, since?: HealthMarks): Promise<void>;
  /** Each backend's count of passed health checks now; rejects when the proxy does not answer. */
  healthMarks(): Promise<HealthMarks>;
  /** The backends the proxy reports `down` right now (its health checks fail); rejects when it does not answer. */
  downBackends(): Promise<string[]>;
}

export interface Reconciliation<P extends PlannedMachine> {
  /** The new state (listeners, resources) with the machines recorded so far; kept up to date on disk. */
  state: FleetState;
  /** Every planned machine, backends first, the proxy last. */
  wanted: readonly Wanted<P>[];
  driver: MachineDriver<P>;
  proxy: FleetProxy;
  ctx: RuntimeContext;
  /** For the final health wait and each admin-API wait (`up --timeout`, else the runtime's default). */
  timeoutMs: number;
}

/**
 * The one `up` loop of every runtime. Order: stop the machines that are replaced (changed or
 * dead, with the proxy restarting too or themselves dead), start the missing ones, tell a proxy
 * that keeps running about its backends, restart each changed backend one at a time behind it,
 * wait until the proxy reports every backend up, and only then stop the machines the plan
 * dropped (the proxy drained them during the sync).
 *
 * A fleet that needs no change but whose proxy still reports some backends down after the
 * health wait has those backends replaced, like dead ones: their machine runs (a VM whose app
 * died without powering it off, a hung process), so waiting longer would not bring them back.
 *
 * On a failure every machine this `up` started is stopped again, except the ones that took the
 * place of a machine it stopped and still run: a backend whose restart one at a time completed
 * (the proxy reported the new one up), and a machine that replaced one outright, above all a
 * proxy. Stopping those would leave the fleet smaller than `up` found it, or without a proxy;
 * the proxy kept serves the backends that are up. The backends not rolled yet keep running as
 * they were; the next `up` rolls them (and undrains one left draining).
 */
export async function reconcile<P extends PlannedMachine>(r: Reconciliation<P>): Promise<FleetState> {
  const { state, driver, proxy, ctx } = r;
  const running = await driver.running();
  let changes = planChanges(state.machines, r.wanted, running);
  const started: MachineState[] = [];
  const dead = deadMachineCheck(state, driver, started);
  if (isUnchanged(changes)) {
    await proxy.sync();
    try {
      await ctx.progress.step('fleet already up to date; checking health', () => proxy.waitHealthy(WAIT_POLICY.unchangedMs, dead));
      return state;
    } catch (error) {
      const down = await proxy.downBackends().catch((): string[] => []);
      const stuck = state.machines.filter((m) => m.role === 'backend' && down.includes(m.name));
      if (stuck.length === 0) throw error;
      ctx.progress.log(`${machineNames(stuck)} still down after ${WAIT_POLICY.unchangedMs / 1000} s: replacing ${stuck.length === 1 ? 'it' : 'them'}`);
      changes = planChanges(state.machines, r.wanted, (m) => running(m) && !stuck.includes(m));
    }
  }

  const stop = { timeoutMs: WAIT_POLICY.stopMs, force: false };
  const start = async ({ plan, fingerprint }: Wanted<P>): Promise<MachineState> => {
    const machine = recordStarting(state, { name: plan.name, role: plan.role, fingerprint, ...driver.record(plan) }, ctx);
    started.push(machine);
    recordRunning(state, machine, await driver.start(plan, machine), ctx);
    return machine;
  };
  const rolledIn = new Set<MachineState>();
  const { proxyKept } = changes;
  // Backends replaced behind a proxy that keeps running (dead, or not serving): until its checks
  // fail the proxy may still report the old one up, so the wait needs a check passed since now.
  const restartedBehindProxy = proxyKept && changes.replaced.some((m) => m.role === 'backend');
  const since = restartedBehindProxy ? await proxy.healthMarks().then(
    (marks) => Object.fromEntries(changes.replaced.filter((m) => m.role === 'backend').map((m) => [m.name, marks[m.name] ?? 0])),
    () => undefined,
  ) : undefined;
  try {
    if (changes.replaced.length > 0) {
      await ctx.progress.step(`stop ${machineNames(changes.replaced)} (changed, exited or not serving)`, () =>
        stopMachines(state, changes.replaced, driver, ctx, stop, { ...stop, timeoutMs: WAIT_POLICY.proxyStopMs }));
    }
    for (const want of changes.toStart) {
      await ctx.progress.step(`start ${want.plan.name} on ${driver.record(want.plan).address}`, () => start(want));
    }
    // A proxy started now has the whole list on its command line; a running one is told through its admin API.
    if (proxyKept) await proxy.sync();
    for (const { machine, want } of changes.rolled) {
      let fresh: MachineState | undefined;
      await ctx.progress.step(`restart ${machine.name} (changed), drained first`, () =>
        proxy.roll(machine.name, async () => {
          await stopMachines(state, [machine], driver, ctx, stop);
          fresh = await start(want);
        }));
      if (fresh) rolledIn.add(fresh);
    }
    const backends = r.wanted.filter((w) => w.plan.role === 'backend').length;
    await ctx.progress.step(`wait until the proxy reports ${backends} backends up`, () => proxy.waitHealthy(r.timeoutMs, dead, since));
  } catch (error) {
    const stillRunning = await driver.running().catch(() => () => false);
    const kept = started.filter((m) => rolledIn.has(m) || (changes.replaced.some((old) => old.name === m.name) && stillRunning(m)));
    // A machine whose start failed is recorded without a PID: `force` finds it by its command line.
    await stopMachines(state, started.filter((m) => !kept.includes(m)), driver, ctx, { ...stop, force: true });
    await driver.cleanup(state);
    const keptProxy = kept.find((m) => m.role === 'proxy');
    if (keptProxy && error instanceof Error) {
      const note = `the new ${keptProxy.name} keeps running (the old one is gone, and a fleet is not left without a proxy): it serves the backends that are up; \`uproxy ps\` shows them`;
      throw new UserError(error.message, [...(error instanceof UserError ? error.details : []), note]);
    }
    throw error;
  }
  if (changes.removed.length > 0) {
    await ctx.progress.step(`stop ${machineNames(changes.removed)} (scaled down)`, async () => {
      await stopMachines(state, changes.removed, driver, ctx, stop);
      await driver.cleanup(state);
    });
  }
  return state;
}

/**
 * Marks the machines as stopping, has the driver stop them, and drops them from the state.
 * The proxy goes first, on its own (with `proxyOptions`): asked to shut down, it drains and
 * closes every client and upstream connection with a FIN. A backend stopped after that holds
 * no connection of the proxy, so even a hard stop of it (QMP `quit`, which sends no FIN) leaves
 * no peer holding a connection; stopped first, it would leave the proxy pooled connections to
 * a machine that vanished without closing them. (A backend `up` removes or restarts behind a
 * running proxy is drained through the proxy before it is stopped: backend-sync.ts.)
 */
export async function stopMachines<P extends PlannedMachine>(
  state: FleetState, machines: readonly MachineState[], driver: MachineDriver<P>, ctx: RuntimeContext, options: DownOptions, proxyOptions = options,
): Promise<void> {
  const groups: [MachineState[], DownOptions][] = [
    [machines.filter((m) => m.role === 'proxy'), proxyOptions],
    [machines.filter((m) => m.role !== 'proxy'), options],
  ];
  for (const [group, groupOptions] of groups) {
    if (group.length === 0) continue;
    recordStopping(state, group, ctx);
    await driver.stop(group, groupOptions);
    forgetMachines(state, group, ctx);
  }
}

/**
 * For the final health wait: a recorded machine that no longer runs fails it at once, with its
 * log, instead of running into the timeout. The runtime is asked at most every `aliveCheckMs`.
 */
function deadMachineCheck<P extends PlannedMachine>(state: FleetState, driver: MachineDriver<P>, started: readonly MachineState[]): () => Promise<DeadMachine | undefined> {
  let lastLook = Number.NEGATIVE_INFINITY;
  return async () => {
    if (Date.now() - lastLook < WAIT_POLICY.aliveCheckMs) return undefined;
    lastLook = Date.now();
    const running = await driver.running();
    const dead = state.machines.find((m) => m.status === 'running' && !running(m));
    if (!dead) return undefined;
    return { what: `machine ${dead.name} stopped ${started.includes(dead) ? 'right after it was started' : 'running'}`, log: dead.log };
  };
}
