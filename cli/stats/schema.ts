import { en } from 'zod/locales';
import * as z from 'zod/mini';

// zod/mini, as in fleet/state.ts: `ps` validates /stats without loading all of zod. It ships
// no messages of its own; English ones make a bad answer say what is wrong.
z.config(en());

/**
 * The JSON of the proxy's `GET /stats`, as documented in proxy/README.md.
 * Every counter is cumulative since the proxy started, so clients derive rates from deltas;
 * a counter that goes down means the proxy restarted.
 */
const count = z.int().check(z.nonnegative());

export const backendState = z.enum(['up', 'down', 'draining']);
export type BackendState = z.infer<typeof backendState>;

export const backendStats = z.object({
  name: z.string(),
  address: z.string(),
  state: backendState,
  weight: count,
  active_connections: count,
  idle_connections: count,
  in_flight: count,
  requests: count,
  errors: count,
  bytes_in: count,
  bytes_out: count,
  latency_ms: z.object({ p50: z.number().check(z.nonnegative()), p90: z.number().check(z.nonnegative()), p99: z.number().check(z.nonnegative()) }),
  health: z.object({ checks: count, failures: count, last_change_ms: count }),
});
export type BackendStats = z.infer<typeof backendStats>;

/** A certificate the proxy serves, as `GET /tls/certificates` and `/stats` list it. */
export const tlsCertificate = z.object({
  index: count,
  /** Its subjectAltName DNS names and IPv4 addresses. */
  names: z.array(z.string()),
  /** Expiry, Unix seconds. */
  not_after: count,
  /** The issuer's common name (its whole name when it has none); absent from proxies before ACME. */
  issuer: z.optional(z.string()),
  /** Serial number in upper-case hex, as `openssl x509 -serial` prints it. */
  serial: z.optional(z.string()),
});
export type TlsCertificate = z.infer<typeof tlsCertificate>;
export const tlsCertificates = z.array(tlsCertificate);

/** A client token as `GET /tokens` lists it: never its hash. */
export const proxyToken = z.object({
  name: z.string(),
  /** Unix seconds from which it is refused; null: never. */
  expires: z.nullable(count),
  /** Requests it was accepted for since the proxy started. */
  requests: count,
  /** Unix seconds of its last accepted request; null: none since the proxy started. */
  last_used: z.nullable(count),
});
export type ProxyToken = z.infer<typeof proxyToken>;
export const proxyTokens = z.array(proxyToken);

export const proxyStats = z.object({
  version: z.string(),
  pid: count,
  uptime_ms: count,
  algorithm: z.enum(['round-robin', 'least-conn', 'p2c']),
  connections: z.object({ active: count, accepted: count, rejected: count }),
  requests: z.object({
    total: count,
    in_flight: count,
    /** Requests sent again to another backend after a failure. */
    retried: count,
    by_class: z.object({ '1xx': count, '2xx': count, '3xx': count, '4xx': count, '5xx': count }),
  }),
  auth: z.object({
    accepted: count,
    /** `expired`: a known token past its expiry; optional, proxies before live tokens have none. */
    denied: z.object({ missing: count, invalid: count, expired: z.optional(count) }),
    by_token: z.record(z.string(), count),
  }),
  backends: z.array(backendStats),
  /** Optional: proxies built before TLS have no such object. */
  tls: z.optional(
    z.object({
      enabled: z.boolean(),
      handshakes: count,
      resumed: count,
      failed: count,
      in_progress: count,
      certificates: tlsCertificates,
    }),
  ),
});
export type ProxyStats = z.infer<typeof proxyStats>;
