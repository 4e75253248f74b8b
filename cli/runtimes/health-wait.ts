/**
 * The wait at the end of every `up`: poll the proxy's `/stats` until it lists exactly the
 * planned backends, all up. Each runtime says how it notices a machine that died (a process
 * gone, a QEMU gone, kraft listing it as exited), so a crash fails the wait at once with the
 * machine's log instead of running into the timeout.
 */
import type { FleetPlan } from '../fleet/plan.js';
import type { FleetState } from '../fleet/state.js';
import { adminEndpointOf, fetchStats } from '../stats/client.js';
import type { ProxyStats } from '../stats/schema.js';
import { UserError } from '../errors.js';
import { WAIT_POLICY } from './machines.js';
import { logTail, sleep } from './processes.js';
import type { RuntimeContext } from './runtime.js';

/** A machine that stopped while `up` waited for it. */
export interface DeadMachine {
  /** What happened, as the start of a sentence: `backend-2 exited right after it was started`. */
  what: string;
  /** Its log (process output or serial console); its tail goes under the error. */
  log: string;
}

/** The fleet being waited for: its proxy's admin endpoint, its backends, its machines' logs. */
export interface WaitedFleet {
  plan: FleetPlan;
  state: FleetState;
  ctx: RuntimeContext;
}

/** Each backend's count of passed health checks at some moment (`passedChecks`). */
export type HealthMarks = Readonly<Record<string, number>>;

export interface HealthWait {
  timeoutMs: number;
  /**
   * Backends started again behind a proxy that kept running: each counts as up only once a
   * health check has passed since these counts were taken, since until the proxy notices the
   * old one's death it still reports it up.
   */
  since?: HealthMarks;
  /** Called before each poll; a machine it returns fails the wait. */
  deadMachine: () => Promise<DeadMachine | undefined>;
  /** Said after the timeout message, e.g. where else to look. */
  hint?: string;
}

const DEAD_LOG_LINES = 20;
const SUSPECT_LOG_LINES = 10;

/**
 * Resolves once the proxy reports exactly the planned backends, all up. On a timeout the
 * error shows the logs of the proxy and of every machine the last problem names.
 */
export async function waitUntilHealthy({ plan, state, ctx }: WaitedFleet, wait: HealthWait): Promise<void> {
  const endpoint = adminEndpointOf(state, ctx.adminToken());
  const wanted = plan.backends.map((b) => b.name);
  const deadline = Date.now() + wait.timeoutMs;
  let lastProblem = 'the proxy has not answered yet';
  while (Date.now() < deadline) {
    const dead = await wait.deadMachine();
    if (dead) throw new UserError(`${dead.what}; the end of ${dead.log}:`, logTail(dead.log, DEAD_LOG_LINES));
    try {
      const stats = await fetchStats(endpoint, Math.min(2000, Math.max(500, deadline - Date.now())));
      const problem = healthProblem(stats, wanted, wait.since);
      if (problem === null) return;
      lastProblem = problem;
    } catch (error) {
      lastProblem = (error as Error).message;
    }
    await sleep(WAIT_POLICY.pollMs);
  }
  const suspects = state.machines.filter((m) => m.role === 'proxy' || lastProblem.includes(m.name));
  throw new UserError(
    `the fleet did not become healthy within ${Math.round(wait.timeoutMs / 1000)} s: ${lastProblem}${wait.hint ? `; ${wait.hint}` : ''}`,
    suspects.flatMap((m) => [`--- the end of ${m.log}:`, ...logTail(m.log, SUSPECT_LOG_LINES)]),
  )
}

/** Health checks that passed, per backend the proxy lists. */
export function passedChecks(stats: ProxyStats): HealthMarks {
  return Object.fromEntries(stats.backends.map((b) => [b.name, b.health.checks - b.health.failures]));
}

export function healthProblem(stats: ProxyStats, wanted: readonly string[], since: HealthMarks = {}): string | null {
  const reported = stats.backends.map((b) => b.name);
  const missing = wanted.filter((name) => !reported.includes(name));
  if (missing.length > 0 || reported.length !== wanted.length) {
    return `the proxy on this port reports backends ${reported.join(', ') || '(none)'}, expected ${wanted.join(', ')}`;
  }
  const passed = passedChecks(stats);
  const stale = (name: string): boolean => since[name] !== undefined && passed[name]! <= since[name]!;
  const notUp = stats.backends.filter((b) => b.state !== 'up' || stale(b.name));
  if (notUp.length > 0) return `not up yet: ${notUp.map((b) => `${b.name} (${stale(b.name) ? 'restarted, no health check passed yet' : b.state})`).join(', ')}`;
  return null;
}
