/**
 * The bookkeeping every runtime does on `state.machines`: which planned machines must be
 * (re)started and which recorded ones must go, and the state writes around each start and
 * stop (recorded before the side effect, so `down` can finish what a killed `up` began).
 */
import type { FleetState, MachineState } from '../fleet/state.js';
import { isOurProcess } from './processes.js';
import type { MachineStatus, RuntimeContext } from './runtime.js';

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
   * first (backend-sync.ts `rollBackends`), so the others carry the traffic meanwhile. A
   * backend that died has no requests to lose and is simply replaced.
   */
  rolled: { machine: MachineState; want: Wanted<P> }[];
  /** Recorded machines the plan no longer has (scaled down): stopped once the new fleet is healthy. */
  removed: MachineState[];
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
  };
}

export function isUnchanged(changes: MachineChanges<{ name: string }>): boolean {
  return changes.toStart.length === 0 && changes.rolled.length === 0 && changes.removed.length === 0;
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
