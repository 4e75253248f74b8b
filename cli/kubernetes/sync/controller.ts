/**
 * The sync loop: at each pass, read the Service's endpoints from the watched slices and the
 * proxy's backends from its /stats, decide (reconcile.ts), and carry the actions out through the
 * admin API with the calls `up` uses (runtimes/backend-sync.ts, stats/client.ts). A pass runs on
 * every change of the slices, every 200 ms while something is under way (a backend coming up,
 * one draining), and every 2 s otherwise: a proxy that restarted (with no backends) or was
 * changed behind the controller's back is brought back in step within that, for the price of a
 * /stats the proxy answers from memory. A failed pass (the admin API unreachable, a refused
 * token) is retried after a backoff growing to 5 s, and reported in /healthz.
 */
import { addBackend, deleteBackend } from '../../runtimes/backend-sync.js';
import { AdminApiError, fetchStats, setBackendDrain, type AdminEndpoint } from '../../stats/client.js';
import { Backoff } from './backoff.js';
import { readSlices } from './endpoints.js';
import type { SyncHealth } from './health.js';
import type { Log } from './log.js';
import { decide, type Action, type Leaving } from './reconcile.js';
import type { SliceSource } from './slice-watch.js';

export interface ControllerOptions {
  admin: AdminEndpoint;
  /** The file the admin token came from, named when the proxy refuses it. */
  adminTokenFile: string;
  /** Which Service port to route to when it has several. */
  portName?: string;
  drainTimeoutMs: number;
  log: Log;
}

const BUSY_PASS_MS = 200;
const RESYNC_MS = 2_000;
const RETRY_FIRST_MS = 500;
/** The proxy is this controller's own peer, not a shared API server: it is not left alone for long. */
const RETRY_MAX_MS = 5_000;

export class SyncController {
  readonly health: Omit<SyncHealth, 'watching' | 'watchProblem'> = { backends: 0 };
  private leaving = new Map<string, Leaving>();
  private readonly backoff = new Backoff(RETRY_FIRST_MS, RETRY_MAX_MS);
  private problems = '';
  private woken = false;
  private wakeUp: (() => void) | undefined;

  constructor(
    private readonly source: SliceSource,
    private readonly options: ControllerOptions,
  ) {}

  /** The slices changed: the next pass starts now, unless a failed one's backoff is being waited out. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Runs passes until `signal` aborts. Nothing happens before the first list of the slices. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      // A change from here on needs a pass after this one.
      this.woken = false;
      let delayMs = RESYNC_MS;
      let wakeable = true;
      if (this.source.listed) {
        try {
          delayMs = (await this.pass()) ? RESYNC_MS : BUSY_PASS_MS;
          this.backoff.reset();
        } catch (error) {
          delayMs = this.backoff.next();
          wakeable = false;
          this.failed(error, delayMs);
        }
      }
      await this.sleep(delayMs, wakeable, signal);
    }
  }

  /** One pass; true when the proxy is in step with the slices and nothing is under way. */
  private async pass(): Promise<boolean> {
    const { endpoints, problems } = readSlices(this.source.slices(), this.options.portName);
    this.reportProblems(problems);
    const stats = await fetchStats(this.options.admin);
    const decision = decide({ endpoints, backends: stats.backends, leaving: this.leaving, now: Date.now(), drainTimeoutMs: this.options.drainTimeoutMs });
    for (const name of decision.removed) this.options.log('info', 'backend_removed', { backend: name });
    for (const action of decision.actions) await this.apply(action);
    this.leaving = decision.leaving;
    if (this.health.syncError !== undefined) this.options.log('info', 'sync_resumed', { backends: stats.backends.length });
    Object.assign(this.health, { lastSync: Date.now(), syncError: undefined, backends: stats.backends.length });
    return decision.actions.length === 0 && decision.pending.length === 0;
  }

  private async apply(action: Action): Promise<void> {
    const { admin, log } = this.options;
    const fields = { backend: action.name, address: action.address };
    switch (action.kind) {
      case 'add':
        await addBackend(admin, { name: action.name, address: action.address });
        log('info', 'backend_added', { ...fields, reason: 'ready' });
        return;
      case 'undrain':
        await setBackendDrain(admin, action.name, false);
        log('info', 'backend_undrained', { ...fields, reason: 'ready' });
        return;
      case 'drain':
        await setBackendDrain(admin, action.name, true);
        log('info', 'backend_drained', { ...fields, reason: action.why });
        return;
      case 'remove':
        await deleteBackend(admin, action.name);
        log('info', 'backend_remove_requested', { ...fields, reason: action.why });
        return;
    }
  }

  private failed(error: unknown, retryInMs: number): void {
    const message = error instanceof AdminApiError && error.status === 401
      ? `the proxy's admin API at ${this.options.admin.url} refused the token in ${this.options.adminTokenFile} (401)`
      : error instanceof Error ? error.message : String(error);
    this.health.syncError = message;
    this.options.log('warn', 'sync_failed', { error: message, retry_in_ms: retryInMs });
  }

  /** Each problem with the slices is logged when it appears, not at every pass. */
  private reportProblems(problems: readonly string[]): void {
    const text = problems.join('\n');
    if (text !== this.problems) for (const problem of problems) this.options.log('warn', 'endpoints_skipped', { problem });
    this.problems = text;
  }

  private sleep(ms: number, wakeable: boolean, signal: AbortSignal): Promise<void> {
    if (signal.aborted || (wakeable && this.woken)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      if (wakeable) this.wakeUp = done;
    });
  }
}
