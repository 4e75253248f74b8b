import { advance, type StatsSeries } from '../stats/rates.js';
import type { ProxyStats } from '../stats/schema.js';

/** The proxy could not be read; the poller keeps retrying with growing pauses. */
export interface Unreachable {
  /** Wall-clock time (epoch ms) of the first failure in this run of failures. */
  sinceEpochMs: number;
  lastError: string;
  failures: number;
  /** Pause before the next attempt. */
  retryInMs: number;
}

/** What the Status view shows: the sampled series so far and whether the proxy answers now. */
export interface PollState {
  series?: StatsSeries;
  unreachable?: Unreachable;
  /** Restarts of each machine by its supervisor (the restart policy), when the runtime keeps count. */
  restarts?: Readonly<Record<string, number>>;
}

export interface PollerOptions {
  fetch: () => Promise<ProxyStats>;
  /** The machines' restart counts; read with each sample, and kept as they were when it fails. */
  restarts?: () => Promise<Readonly<Record<string, number>>>;
  intervalMs: number;
  onChange: (state: PollState) => void;
  /** Longest pause between attempts while the proxy does not answer. */
  maxBackoffMs?: number;
  /** Monotonic clock for rates; wall clock for "since when". Injectable for tests. */
  monotonicMs?: () => number;
  epochMs?: () => number;
}

export const DEFAULT_MAX_BACKOFF_MS = 15_000;

/** The pause after `failures` failures in a row: the interval, doubled per failure, capped. */
export function backoffMs(intervalMs: number, failures: number, maxMs = DEFAULT_MAX_BACKOFF_MS): number {
  if (failures <= 0) return intervalMs;
  return Math.max(intervalMs, Math.min(maxMs, intervalMs * 2 ** failures));
}

/**
 * Samples `/stats` every interval. The next request is scheduled only after the previous one
 * settled, so a slow proxy never piles requests up.
 */
export class StatsPoller {
  private state: PollState = {};
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private readonly monotonicMs: () => number;
  private readonly epochMs: () => number;

  constructor(private readonly options: PollerOptions) {
    this.monotonicMs = options.monotonicMs ?? (() => performance.now());
    this.epochMs = options.epochMs ?? Date.now;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async poll(): Promise<void> {
    let delay: number;
    const restarts = this.options.restarts?.().catch(() => this.state.restarts);
    try {
      const stats = await this.options.fetch();
      this.state = { series: advance(this.state.series, { atMs: this.monotonicMs(), stats }), restarts: (await restarts) ?? this.state.restarts };
      delay = this.options.intervalMs;
    } catch (error) {
      const previous = this.state.unreachable;
      const failures = (previous?.failures ?? 0) + 1;
      delay = backoffMs(this.options.intervalMs, failures, this.options.maxBackoffMs);
      this.state = {
        ...this.state,
        unreachable: {
          sinceEpochMs: previous?.sinceEpochMs ?? this.epochMs(),
          lastError: error instanceof Error ? error.message : String(error),
          failures,
          retryInMs: delay,
        },
      };
    }
    if (this.stopped) return;
    this.options.onChange(this.state);
    this.timer = setTimeout(() => void this.poll(), delay);
  }
}

/**
 * Two samples one interval apart, for a one-shot snapshot: rates need a delta. A failure is
 * thrown as is, since a snapshot has nobody to retry for.
 */
export async function sampleTwice(
  fetch: () => Promise<ProxyStats>,
  intervalMs: number,
  monotonicMs: () => number = () => performance.now(),
): Promise<StatsSeries> {
  const first = advance(undefined, { atMs: monotonicMs(), stats: await fetch() });
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
  return advance(first, { atMs: monotonicMs(), stats: await fetch() });
}
