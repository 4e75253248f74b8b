import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { pollUntil, steadyLoad } from './support/load.js';
import { ADMIN_TOKEN, CLIENT_TOKEN, startProxy, type RunningProxy } from './support/proxy.js';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('proxy: live backend changes through the admin API', () => {
  let backends: TestBackend[];
  let proxy: RunningProxy;

  beforeAll(async () => {
    backends = await Promise.all(['l1', 'l2', 'l3'].map((n) => startBackend(n)));
    proxy = await startProxy({ backends: backends.slice(0, 2).map((b) => ({ name: b.name, address: b.address })) });
  });
  afterAll(async () => {
    await proxy?.stop();
    await Promise.all((backends ?? []).map((b) => b.close()));
  });

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await request(`${proxy.adminUrl}${path}`, {
      method: method as 'POST',
      headers: { ...admin, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
  };
  const stateOf = async (name: string): Promise<string | undefined> =>
    (await proxy.stats()).backends.find((b) => b.name === name)?.state;
  const statsOf = async (name: string) => (await proxy.stats()).backends.find((b) => b.name === name);
  /** Waits until the load has been served `n` more times, wherever: a window measured in traffic, not time. */
  const moreTraffic = async (load: { result: { ok: number } }, n: number): Promise<void> => {
    const target = load.result.ok + n;
    await pollUntil(`${n} more requests served`, async () => load.result.ok >= target);
  };
  const slow = (ms: number): Promise<{ status: number; name: string }> =>
    request(`${proxy.url}/slow?ms=${ms}`, { headers: { 'x-auth-token': CLIENT_TOKEN } })
      .then(async (r) => ({ status: r.statusCode, name: ((await r.body.json()) as { name: string }).name }));

  it('requires the admin token and validates what it is given', async () => {
    const anonymous = await request(`${proxy.adminUrl}/backends/l1/drain`, { method: 'POST' });
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.dump();
    expect((await call('POST', '/backends', { name: 'x', address: 'nowhere' })).status).toBe(400);
    expect((await call('POST', '/backends', { name: 'x' })).json.error).toMatch(/name and address are required/);
    expect((await call('POST', '/backends', { name: 'l1', address: backends[0]!.address })).status).toBe(409);
    expect((await call('POST', '/backends', { name: 'bad name', address: '127.0.0.1:1' })).json.error).toMatch(/name must be/);
    expect((await call('POST', '/backends/nope/drain')).status).toBe(404);
    expect((await call('GET', '/backends/l1/drain')).status).toBe(405);
  });

  it('adds, drains, undrains and removes backends under load without a failed request', async () => {
    const load = steadyLoad(proxy.url, { clients: 6, maxMs: 30_000, maxRequests: 200_000 });
    try {
      await pollUntil('traffic on l1 and l2', async () => (load.result.byBackend.l1 ?? 0) > 20 && (load.result.byBackend.l2 ?? 0) > 20);

      // Add l3: it is probed, goes up and takes traffic.
      const added = await call('POST', '/backends', { name: 'l3', address: backends[2]!.address, weight: 2 });
      expect(added.status).toBe(201);
      expect(added.json).toMatchObject({ name: 'l3', weight: 2, state: 'down' });
      await pollUntil('l3 up', async () => (await stateOf('l3')) === 'up');
      await pollUntil('traffic on l3', async () => (load.result.byBackend.l3 ?? 0) > 20);

      // Drain l1 with a request in flight: it finishes there, and nothing new goes to l1.
      const inFlight = slow(800);
      await pollUntil('the slow request in flight', async () => backends.some((b) => b.seen.some((s) => s.url.startsWith('/slow'))));
      const holderBackend = backends.find((b) => b.seen.some((s) => s.url.startsWith('/slow')))!;
      const holder = holderBackend.name;
      const drained = await call('POST', `/backends/${holder}/drain`);
      expect(drained.json).toMatchObject({ name: holder, state: 'draining' });
      const countAtDrain = holderBackend.seen.length;
      expect(await inFlight).toEqual({ status: 200, name: holder });
      // A request or two may have been picked just before the drain; once they are done, none.
      await pollUntil(`nothing in flight on ${holder}`, async () => (await statsOf(holder))?.in_flight === 0);
      const settled = holderBackend.seen.length;
      await moreTraffic(load, 100);
      expect(holderBackend.seen.length).toBe(settled);
      expect(settled - countAtDrain).toBeLessThan(20);
      const s = (await statsOf(holder))!;
      expect(s.state).toBe('draining');
      expect(s.idle_connections).toBe(0);
      expect(s.in_flight).toBe(0);
      const servedBeforeUndrain = load.result.byBackend[holder] ?? 0;

      // Undrain: back up, back in rotation.
      expect((await call('POST', `/backends/${holder}/undrain`)).json).toMatchObject({ state: 'up' });
      await pollUntil(`traffic on ${holder} again`, async () => (load.result.byBackend[holder] ?? 0) > servedBeforeUndrain + 20);

      // Remove l2 while a request is in flight on it: it completes, then l2 is gone.
      const victim = 'l2';
      const before = backends[1]!.seen.length;
      const pending: Promise<{ status: number; name: string }>[] = [];
      for (let i = 0; i < 6; i++) pending.push(slow(600));
      await pollUntil('a slow request on l2', async () => backends[1]!.seen.slice(before).some((x) => x.url.startsWith('/slow')));
      const removed = await call('DELETE', `/backends/${victim}`);
      expect(removed.status).toBe(202);
      expect(removed.json).toEqual({ name: victim, state: 'removing' });
      for (const r of await Promise.all(pending)) expect(r.status).toBe(200);
      await pollUntil('l2 gone from /stats', async () => !(await proxy.stats()).backends.some((b) => b.name === victim));
      expect((await call('POST', `/backends/${victim}/drain`)).status).toBe(404);
      const seenByL2 = backends[1]!.seen.length;
      await moreTraffic(load, 100);
      expect(backends[1]!.seen.length).toBe(seenByL2);
      expect(proxy.output()).toMatch(/event=backend_removed backend=l2/);
    } finally {
      await load.stop();
    }
    expect(load.result.failures).toEqual([]);
    expect(load.result.ok).toBeGreaterThan(300);
  }, 60_000);
});

describe('proxy: starting with no backend', () => {
  it('runs with an admin listener alone, answers 503 until a backend added through it is up, then serves', async () => {
    const backend = await startBackend('late');
    const proxy = await startProxy({ backends: [] });
    try {
      const early = await request(proxy.url, { headers: { 'x-auth-token': CLIENT_TOKEN } });
      expect(early.statusCode).toBe(503);
      expect(await early.body.json()).toEqual({ error: 'no backend available' });
      const added = await request(`${proxy.adminUrl}/backends`, {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'late', address: backend.address }),
      });
      expect(added.statusCode).toBe(201);
      await added.body.dump();
      await pollUntil('late up', async () => (await proxy.stats()).backends.some((b) => b.name === 'late' && b.state === 'up'));
      const served = await request(proxy.url, { headers: { 'x-auth-token': CLIENT_TOKEN } });
      expect(served.statusCode).toBe(200);
      await served.body.dump();
      expect(proxy.output()).toMatch(/event=start .* backends=0 /);
    } finally {
      await proxy.stop();
      await backend.close();
    }
  });
});
