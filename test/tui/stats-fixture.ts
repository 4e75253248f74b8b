import { proxyStats, type BackendStats, type ProxyStats } from '../../cli/stats/schema.js';

/** A backend as `/stats` reports it, with the given overrides. */
export function backend(name: string, port: number, over: Partial<BackendStats> = {}): BackendStats {
  return {
    name,
    address: `127.0.0.1:${port}`,
    state: 'up',
    weight: 1,
    active_connections: 0,
    idle_connections: 0,
    in_flight: 0,
    requests: 0,
    errors: 0,
    bytes_in: 0,
    bytes_out: 0,
    latency_ms: { p50: 0.4, p90: 0.9, p99: 2.1 },
    health: { checks: 1, failures: 0, last_change_ms: 0 },
    ...over,
  };
}

export interface Counters {
  uptimeMs?: number;
  pid?: number;
  accepted?: number;
  missing?: number;
  invalid?: number;
  byToken?: Record<string, number>;
  backends?: BackendStats[];
}

/** A `/stats` document, validated by the real schema so fixtures cannot drift from it. */
export function stats(c: Counters = {}): ProxyStats {
  const accepted = c.accepted ?? 0;
  const missing = c.missing ?? 0;
  const invalid = c.invalid ?? 0;
  const total = accepted + missing + invalid;
  return proxyStats.parse({
    version: '0.1.0',
    pid: c.pid ?? 4242,
    uptime_ms: c.uptimeMs ?? 10_000,
    algorithm: 'round-robin',
    connections: { active: 1, accepted: total, rejected: 0 },
    requests: { total, in_flight: 0, retried: 0, by_class: { '1xx': 0, '2xx': accepted, '3xx': 0, '4xx': missing + invalid, '5xx': 0 } },
    auth: { accepted, denied: { missing, invalid }, by_token: c.byToken ?? { default: accepted } },
    backends: c.backends ?? [],
  });
}
