/**
 * The controller's `GET /healthz` (for a Kubernetes liveness or readiness probe): 200 while the
 * EndpointSlice watch is established and the last pass against the proxy succeeded recently,
 * else 503 saying why.
 */
import http from 'node:http';

export interface SyncHealth {
  watching: boolean;
  /** Why there is no watch now. */
  watchProblem?: string;
  /** When the last pass against the proxy succeeded (ms). */
  lastSync?: number;
  /** Why the last pass failed; cleared by the next success. */
  syncError?: string;
  /** Backends the proxy listed at the last pass. */
  backends: number;
}

/** Passes run at least every 2 s: 30 s without one that succeeded is a controller that is stuck. */
export const SYNC_STALE_MS = 30_000;

export interface HealthAnswer {
  status: 200 | 503;
  body: { watching: boolean; lastSync: string | null; backends: number; why?: string };
}

export function healthAnswer(health: SyncHealth, now: number): HealthAnswer {
  const why = !health.watching
    ? `not watching EndpointSlices: ${health.watchProblem ?? 'not started yet'}`
    : health.syncError !== undefined
      ? `the last sync with the proxy failed: ${health.syncError}`
      : health.lastSync === undefined
        ? 'not synced with the proxy yet'
        : now - health.lastSync > SYNC_STALE_MS
          ? `no sync with the proxy for ${Math.round((now - health.lastSync) / 1000)} s`
          : undefined;
  const body = {
    watching: health.watching,
    lastSync: health.lastSync === undefined ? null : new Date(health.lastSync).toISOString(),
    backends: health.backends,
    ...(why === undefined ? {} : { why }),
  };
  return { status: why === undefined ? 200 : 503, body };
}

/** Serves `answer()` at GET /healthz on `listen` until closed. */
export function serveHealth(listen: { host: string; port: number }, answer: () => HealthAnswer): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: unknown): void => {
      const text = `${JSON.stringify(body)}\n`;
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(req.method === 'HEAD' ? undefined : text);
    };
    if (path !== '/healthz') return reply(404, { error: 'the only route is GET /healthz' });
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, { error: 'use GET /healthz' });
    const { status, body } = answer();
    reply(status, body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
