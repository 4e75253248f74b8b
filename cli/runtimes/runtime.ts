import type { RuntimeName } from '../config/schema.js';
import type { CommandLine } from '../fleet/argv.js';
import type { FleetPlan } from '../fleet/plan.js';
import type { AccelChoice } from '../fleet/qemu-command.js';
import type { FleetState, MachineState } from '../fleet/state.js';
import type { Progress } from '../progress.js';
import { UserError } from '../errors.js';
import type { PreviewedMachine, Wanted } from './machines.js';

/**
 * The one interface every runtime (host, qemu, kraft) implements. Commands never know which
 * runtime they drive: they load one through `loadRuntime` and call these methods.
 *
 * Rules every runtime follows:
 * - `up` and `down` run under the project lock (the caller holds it).
 * - The state file is written through `ctx.saveState` BEFORE each side effect, recording what
 *   is about to be created, so `down` can always finish what a killed `up` began.
 * - `up` is idempotent: on a fleet that already matches the plan it changes nothing.
 */
export interface Runtime {
  readonly name: RuntimeName;
  /**
   * Whether the proxy's admin API may carry its private key: only where it listens on loopback
   * (host). A VM guest's listens on the bridge its backends share, so its key travels only in
   * its boot image, and a renewal there keeps the key (tls/proxy-cert.ts).
   */
  readonly keyOverAdminApi: boolean;
  /**
   * Checks, before anything is built, what would make `up` fail for a reason the user must fix
   * (privileges, a busy configured port, a missing tool or boot image): a refusal in a second,
   * not after the builds.
   */
  preflight(plan: FleetPlan, previous: FleetState | null, ctx: RuntimeContext): Promise<void>;
  /** Builds what the plan runs (skipping unchanged sources). */
  build(plan: FleetPlan, ctx: RuntimeContext): Promise<void>;
  /**
   * Makes the running fleet match the plan, waits until the proxy reports every backend up,
   * and returns the new state. On failure it stops what it started and throws.
   */
  up(plan: FleetPlan, previous: FleetState | null, ctx: RuntimeContext, options: UpOptions): Promise<FleetState>;
  /** Stops and removes everything the state records; tolerates what is already gone. */
  down(state: FleetState, ctx: RuntimeContext, options: DownOptions): Promise<void>;
  /** How each recorded machine is doing right now, from the runtime's point of view. */
  inspect(state: FleetState, ctx: RuntimeContext): Promise<MachineStatus[]>;
  /**
   * After a change made to running machines through the admin API (a token added or revoked):
   * makes what restarts a machine restart it as the plan now says (the host runtime's
   * supervisors). Runtimes without supervisors leave it out.
   */
  refresh?(plan: FleetPlan, state: FleetState, ctx: RuntimeContext): Promise<void>;
  /** Every command `up` would run for this plan on a fleet not running yet (`up --dry-run`), without running anything. */
  describe(plan: FleetPlan, previous: FleetState | null, ctx: RuntimeContext): Promise<CommandLine[]>;
  /**
   * For `up --dry-run` on a running fleet: what `up` would build, and the machines it would
   * reconcile with their fingerprints, computed as `up` computes them but without a side
   * effect. Runtimes without it fall back to `describe`.
   */
  preview?(plan: FleetPlan, state: FleetState, ctx: RuntimeContext, options: Pick<UpOptions, 'accel'>): Promise<FleetPreview>;
}

export interface FleetPreview {
  /** What `up` would do before it reconciles the machines, a line each: `build backend (sources changed)`, a network change. */
  steps: string[];
  /** Every planned machine, as `up` would hand it to `reconcile`; an app to rebuild counts as changed. */
  wanted: Wanted<PreviewedMachine>[];
  /** One look at what runs: whether a recorded machine still runs as recorded. */
  running(machine: MachineState): boolean;
}

export interface RuntimeContext {
  projectDir: string;
  progress: Progress;
  /** Persists the state atomically; call it before each side effect. */
  saveState(state: FleetState): void;
  /** Deletes the state file (after a complete `down`). */
  clearState(): void;
  /** The admin token's plaintext, for the runtime to query the proxy's admin API. */
  adminToken(): string;
}

export interface UpOptions {
  /** How long to wait for the fleet to become healthy; the runtime's default when absent. */
  timeoutMs?: number;
  /** The qemu runtime's VM acceleration (`up --accel`; `qemu.accel` of uproxy.json when absent); the other runtimes run no VMM of their own. */
  accel?: AccelChoice;
}

export interface DownOptions {
  /** SIGTERM (or a clean shutdown request) first; after this long, force. */
  timeoutMs: number;
  /** Also hunt leftovers by recorded command lines, not only by recorded PIDs. */
  force: boolean;
}

export interface MachineStatus {
  name: string;
  role: 'proxy' | 'backend';
  address: string;
  pid: number | null;
  /** `running` / `exited` / `starting` as the runtime sees the machine. */
  state: 'running' | 'exited' | 'starting' | 'stopping';
  /** How often its supervisor restarted it (the restart policy), where one keeps it. */
  restarts?: number;
}

/**
 * Runtimes are loaded on demand so `uproxy --help` never pays for them. A runtime lives in
 * `cli/runtimes/<name>.ts`, exports `runtime: Runtime`, and is listed here: literal import
 * paths let the bundler (scripts/build.mjs) split each runtime into its own lazy chunk.
 */
const RUNTIME_MODULES: Readonly<Record<RuntimeName, () => Promise<{ runtime: Runtime }>>> = {
  host: () => import('./host.js'),
  qemu: () => import('./qemu.js'),
  kraft: () => import('./kraft.js'),
};

export async function loadRuntime(name: RuntimeName): Promise<Runtime> {
  if (!Object.hasOwn(RUNTIME_MODULES, name)) {
    throw new UserError(`the "${name}" runtime is not available in this version of uproxy; use "runtime": "host" in uproxy.json or --runtime host`);
  }
  return (await RUNTIME_MODULES[name]()).runtime;
}
