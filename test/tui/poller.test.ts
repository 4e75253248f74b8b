import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fetchStats, setBackendDrain } from '../../cli/stats/client.js';
import { backoffMs, sampleTwice, StatsPoller, type PollState } from '../../cli/tui/poller.js';
import { backend, stats } from './stats-fixture.js';

const TOKEN = 'admin-secret';
const servers: Server[] = [];

/** A real admin API on 127.0.0.1 whose counters grow by 10 per request to /stats. */
async function adminApi(port = 0, handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  let served = 0;
  const server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
    if (handler) return handler(req, res);
    served++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats({ accepted: served * 10, backends: [backend('backend-1', 9001, { requests: served * 10 })] })));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  servers.push(server);
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

afterEach(async () => {
  await Promise.all(servers.splice(0).filter((s) => s.listening).map(close));
});

describe('StatsPoller against a real admin API', () => {
  it('samples every interval, reports the proxy unreachable with backoff, and recovers', async () => {
    const { server, url } = await adminApi();
    const port = Number(new URL(url).port);
    const endpoint = { url, token: TOKEN };
    const states: PollState[] = [];
    const poller = new StatsPoller({ fetch: () => fetchStats(endpoint, 1000), intervalMs: 100, maxBackoffMs: 400, onChange: (s) => states.push(s) });
    poller.start();
    try {
      await vi.waitFor(() => expect(states.at(-1)?.series?.rates?.auth.acceptedPerSec).toBeGreaterThan(0), { timeout: 10_000 });
      expect(states.at(-1)?.unreachable).toBeUndefined();

      server.closeAllConnections();
      await close(server);
      await vi.waitFor(() => expect(states.at(-1)?.unreachable?.failures).toBeGreaterThanOrEqual(3), { timeout: 10_000 });
      const down = states.filter((s) => s.unreachable);
      expect(down.at(-1)!.unreachable!.lastError).toMatch(/cannot reach the proxy's admin API.*ECONNREFUSED/);
      // The first failure's time is kept while failures go on; pauses double up to the cap.
      expect(new Set(down.map((s) => s.unreachable!.sinceEpochMs)).size).toBe(1);
      expect(down.map((s) => s.unreachable!.retryInMs).slice(0, 3)).toEqual([200, 400, 400]);
      // The last numbers stay on screen while the proxy is away.
      expect(down.at(-1)!.series?.latest.stats.auth.accepted).toBeGreaterThan(0);

      await adminApi(port);
      await vi.waitFor(() => expect(states.at(-1)?.unreachable).toBeUndefined(), { timeout: 10_000 });
    } finally {
      poller.stop();
    }
  });

  it('takes two samples one interval apart for a snapshot', async () => {
    const { url } = await adminApi();
    const started = performance.now();
    const series = await sampleTwice(() => fetchStats({ url, token: TOKEN }), 300);
    expect(performance.now() - started).toBeGreaterThanOrEqual(295);
    expect(series.rates!.intervalMs).toBeGreaterThanOrEqual(295);
    expect(series.latest.stats.auth.accepted).toBe(20);
    expect(series.rates!.backends['backend-1']!.share).toBe(1);
  });

  it('grows the pause from the interval, doubling per failure, up to the cap', () => {
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffMs(1000, n, 15_000))).toEqual([1000, 2000, 4000, 8000, 15_000, 15_000]);
    expect(backoffMs(20_000, 3, 15_000)).toBe(20_000);
  });
});

describe('setBackendDrain', () => {
  it('POSTs drain and undrain for the named backend with the admin token', async () => {
    const seen: string[] = [];
    const { url } = await adminApi(0, (req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    expect(await setBackendDrain({ url, token: TOKEN }, 'backend-2', true)).toBe(true);
    expect(await setBackendDrain({ url, token: TOKEN }, 'backend-2', false)).toBe(true);
    expect(seen).toEqual(['POST /backends/backend-2/drain', 'POST /backends/backend-2/undrain']);
  });

  it('answers false when the proxy has no drain route (404) and throws on other errors', async () => {
    const { url } = await adminApi(0, (req, res) => res.writeHead(req.url?.includes('b500') ? 500 : 404).end('not found'));
    expect(await setBackendDrain({ url, token: TOKEN }, 'backend-1', true)).toBe(false);
    await expect(setBackendDrain({ url, token: TOKEN }, 'b500', true)).rejects.toThrow(/answered 500/);
    await expect(setBackendDrain({ url, token: 'wrong' }, 'backend-1', true)).rejects.toThrow(/refused the admin token/);
  });
});
