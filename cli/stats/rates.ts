import type { ProxyStats } from './schema.js';

/**
 * Rates from the proxy's cumulative counters. Pure: the caller takes samples (with a
 * monotonic clock) and feeds them here; nothing in this module reads the clock or the network.
 *
 * A counter that goes down, a changed pid or an uptime that went back means the proxy
 * restarted between two samples. Its counters then count from zero again, so the delta over
 * the interval is the current value itself: never negative, and never more than what really
 * happened in the interval (a slight undercount, as the proxy was not running all of it).
 */

/** One `/stats` answer and when it was taken, in milliseconds of a monotonic clock. */
export interface Sample {
  atMs: number;
  stats: ProxyStats;
}

export interface BackendRates {
  /** Requests per second; null for a backend that was not in the previous sample. */
  requestsPerSec: number | null;
  errorsPerSec: number | null;
  /** Fraction (0..1) of the interval's backend requests that went to this backend. */
  share: number | null;
}

export interface Rates {
  intervalMs: number;
  /** The proxy restarted during the interval (its counters started again from zero). */
  restarted: boolean;
  requestsPerSec: number;
  auth: {
    acceptedPerSec: number;
    missingPerSec: number;
    invalidPerSec: number;
    deniedPerSec: number;
    /** Accepted requests per second per token name. */
    byToken: Record<string, number>;
  };
  /** Keyed by backend name; every backend of the newer sample has an entry. */
  backends: Record<string, BackendRates>;
}

/** The auth rates of one interval, kept for the sparklines. */
export interface RatePoint {
  atMs: number;
  acceptedPerSec: number;
  deniedPerSec: number;
}

export const HISTORY_WINDOW_MS = 60_000;

/** Everything a view needs: the newest sample, the rates that led to it, and recent history. */
export interface StatsSeries {
  latest: Sample;
  /** Null until there are two samples with time between them. */
  rates: Rates | null;
  history: RatePoint[];
}

function proxyRestarted(prev: ProxyStats, curr: ProxyStats): boolean {
  return (
    curr.pid !== prev.pid ||
    curr.uptime_ms < prev.uptime_ms ||
    curr.requests.total < prev.requests.total ||
    curr.connections.accepted < prev.connections.accepted
  );
}

/**
 * The rates between two samples, or null when no time passed between them (a rate over a
 * zero interval would be infinite).
 */
export function computeRates(prev: Sample, curr: Sample): Rates | null {
  const intervalMs = curr.atMs - prev.atMs;
  if (!(intervalMs > 0)) return null;
  const restarted = proxyRestarted(prev.stats, curr.stats);
  const perSec = (now: number, before: number | undefined): number => {
    const delta = restarted || before === undefined || now < before ? now : now - before;
    return (delta * 1000) / intervalMs;
  };

  const a = curr.stats.auth;
  const pa = prev.stats.auth;
  const missingPerSec = perSec(a.denied.missing, pa.denied.missing);
  const invalidPerSec = perSec(a.denied.invalid, pa.denied.invalid);
  const expiredPerSec = perSec(a.denied.expired ?? 0, pa.denied.expired ?? 0);
  const byToken: Record<string, number> = {};
  for (const [token, count] of Object.entries(a.by_token)) {
    // A token the proxy did not list before had not been used yet: its baseline is zero.
    byToken[token] = perSec(count, pa.by_token[token] ?? 0);
  }

  const before = new Map(prev.stats.backends.map((b) => [b.name, b]));
  const backends: Record<string, BackendRates> = {};
  let backendTotal = 0;
  for (const b of curr.stats.backends) {
    const old = before.get(b.name);
    // A backend that just appeared has no known baseline (its counter may predate our first
    // look), unless the proxy restarted, in which case it counts from zero like the rest.
    const known = old !== undefined || restarted;
    const requestsPerSec = known ? perSec(b.requests, old?.requests) : null;
    const errorsPerSec = known ? perSec(b.errors, old?.errors) : null;
    backendTotal += requestsPerSec ?? 0;
    backends[b.name] = { requestsPerSec, errorsPerSec, share: null };
  }
  for (const r of Object.values(backends)) {
    if (r.requestsPerSec !== null) r.share = backendTotal > 0 ? r.requestsPerSec / backendTotal : 0;
  }

  return {
    intervalMs,
    restarted,
    requestsPerSec: perSec(curr.stats.requests.total, prev.stats.requests.total),
    auth: {
      acceptedPerSec: perSec(a.accepted, pa.accepted),
      missingPerSec,
      invalidPerSec,
      deniedPerSec: missingPerSec + invalidPerSec + expiredPerSec,
      byToken,
    },
    backends,
  };
}

/** Appends a point and drops those older than the window, keeping the input untouched. */
export function appendHistory(history: readonly RatePoint[], point: RatePoint, windowMs = HISTORY_WINDOW_MS): RatePoint[] {
  return [...history.filter((p) => p.atMs > point.atMs - windowMs), point];
}

/** Folds a new sample into the series. A sample taken no later than the latest one is ignored. */
export function advance(series: StatsSeries | undefined, sample: Sample): StatsSeries {
  if (series === undefined) return { latest: sample, rates: null, history: [] };
  const rates = computeRates(series.latest, sample);
  if (rates === null) return series;
  const point = { atMs: sample.atMs, acceptedPerSec: rates.auth.acceptedPerSec, deniedPerSec: rates.auth.deniedPerSec };
  return { latest: sample, rates, history: appendHistory(series.history, point) };
}
