import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { startBackendProcess, type BackendProcess } from './support/backend-process.js';
import { pollUntil, steadyLoad } from './support/load.js';
import { startRawBackend, type RawBackend } from './support/raw-backend.js';
import { CLIENT_TOKEN, rawExchange, splitResponses, startProxy, type RunningProxy } from './support/proxy.js';

const T = `X-Auth-Token: ${CLIENT_TOKEN}\r\n`;

describe('proxy: failover', () => {
  let proxy: RunningProxy | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    for (const c of cleanups.splice(0)) await c();
  });

  it('loses no request when a backend is SIGKILLed under load, marks it down within 2 s, and takes it back after a restart', async () => {
    const procs: BackendProcess[] = [];
    for (const n of ['k1', 'k2', 'k3']) procs.push(await startBackendProcess(n));
    cleanups.push(async () => { for (const p of procs) await p.kill(); });
    proxy = await startProxy({ backends: procs.map((p) => ({ name: p.name, address: p.address })) });
    const p = proxy;
    const state = async (name: string): Promise<string | undefined> =>
      (await p.stats()).backends.find((b) => b.name === name)?.state;

    const load = steadyLoad(p.url, { clients: 8, maxMs: 25_000, maxRequests: 200_000 });
    try {
      await pollUntil('traffic on every backend', async () => ['k1', 'k2', 'k3'].every((n) => (load.result.byBackend[n] ?? 0) > 20));
      const killedAt = Date.now();
      await procs[1]!.kill();
      await pollUntil('k2 marked down', async () => (await state('k2')) === 'down', 5_000);
      const downAfterMs = Date.now() - killedAt;
      expect(downAfterMs).toBeLessThan(2_000);

      // Traffic goes on over the two survivors.
      const okBefore = load.result.ok;
      await pollUntil('requests served while k2 is down', async () => load.result.ok > okBefore + 200);

      procs[1] = await startBackendProcess('k2', procs[1]!.port);
      await pollUntil('k2 up again', async () => (await state('k2')) === 'up', 10_000);
      const k2Before = load.result.byBackend.k2 ?? 0;
      await pollUntil('k2 back in rotation', async () => (load.result.byBackend.k2 ?? 0) > k2Before + 20);
    } finally {
      await load.stop();
    }
    expect(load.result.failures).toEqual([]);
    expect(load.result.ok).toBeGreaterThan(500);
    expect(p.output()).toMatch(/event=backend_state backend=k2 .*from=up to=down/);
  }, 60_000);

  it('retries on another backend when a connection is refused, and takes the refusing backend down at once', async () => {
    const good = await startBackend('good');
    const doomed = await startBackendProcess('doomed');
    cleanups.push(() => good.close(), () => doomed.kill());
    // Health checks far apart: only the failed requests themselves (passive checks) can notice.
    proxy = await startProxy({
      backends: [{ name: 'doomed', address: doomed.address }, { name: 'good', address: good.address }],
      args: ['--health-interval-ms', '60000'],
    });
    await doomed.kill();
    const names: string[] = [];
    for (let i = 0; i < 6; i++) {
      const raw = await rawExchange(proxy.port, `GET /r/${i} HTTP/1.1\r\nHost: t\r\n${T}Connection: close\r\n\r\n`);
      const [res] = splitResponses(raw);
      expect(res!.status).toBe(200);
      names.push((JSON.parse(res!.body) as { name: string }).name);
    }
    expect(names.every((n) => n === 'good')).toBe(true);
    const s = await proxy.stats();
    expect(s.backends.find((b) => b.name === 'doomed')!.state).toBe('down');
    expect(s.requests.retried).toBeGreaterThanOrEqual(1);
    expect(proxy.output()).toMatch(/event=backend_state backend=doomed .*to=down reason="connect failed"/);
  });

  describe('with a backend that closes without answering', () => {
    let raw: RawBackend;
    let good: TestBackend;
    const start = async (): Promise<RunningProxy> => {
      raw = await startRawBackend();
      good = await startBackend('good');
      cleanups.push(() => raw.close(), () => good.close());
      // Round-robin starts with the first backend: the raw one sees the first request.
      proxy = await startProxy({ backends: [{ name: 'raw', address: raw.address }, { name: 'good', address: good.address }] });
      return proxy;
    };

    it('retries an idempotent request without a body on another backend', async () => {
      const p = await start();
      raw.respondWith('', { close: true });
      const got = await rawExchange(p.port, `GET /idem HTTP/1.1\r\nHost: t\r\n${T}Connection: close\r\n\r\n`);
      const [res] = splitResponses(got);
      expect(res!.status).toBe(200);
      expect(JSON.parse(res!.body)).toMatchObject({ name: 'good', url: '/idem' });
      expect(raw.requests()).toBe(1);
      expect((await p.stats()).requests.retried).toBe(1);
    });

    it('does not retry a POST with a body that reached the backend', async () => {
      const p = await start();
      raw.respondWith('', { close: true });
      const got = await rawExchange(p.port, `POST /once HTTP/1.1\r\nHost: t\r\n${T}Content-Length: 5\r\nConnection: close\r\n\r\nhello`);
      expect(splitResponses(got)[0]!.status).toBe(502);
      expect(raw.requests()).toBe(1);
      expect(good.seen.filter((s) => s.url === '/once')).toHaveLength(0);
    });

    it('never retries once response bytes reached the client', async () => {
      const p = await start();
      raw.respondWith('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial', { close: true });
      const got = await rawExchange(p.port, `GET /partial HTTP/1.1\r\nHost: t\r\n${T}\r\n`);
      // The client saw the head and the partial body, then the connection closed: no second response.
      expect(got).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(got.endsWith('partial')).toBe(true);
      expect(good.seen.filter((s) => s.url === '/partial')).toHaveLength(0);
      expect((await p.stats()).requests.retried).toBe(0);
    });
  });
});
