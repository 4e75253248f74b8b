import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyStats } from '../../cli/stats/schema.js';
import { startBackend, type TestBackend } from './support/backend.js';
import { parsePrometheus } from './support/prometheus.js';
import { ADMIN_TOKEN, CLIENT_TOKEN, rawExchange, startProxy, type RunningProxy } from './support/proxy.js';

describe('proxy: admin API', () => {
  let backends: TestBackend[];
  let proxy: RunningProxy;

  beforeAll(async () => {
    backends = await Promise.all(['a1', 'a2'].map((n) => startBackend(n)));
    proxy = await startProxy({
      backends: backends.map((b) => ({ name: b.name, address: b.address })),
      tokens: [{ name: 'default', secret: CLIENT_TOKEN }, { name: 'reports', secret: 'reports-token' }],
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await Promise.all((backends ?? []).map((b) => b.close()));
  });

  it('serves /healthz without a token', async () => {
    const res = await request(`${proxy.adminUrl}/healthz`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ status: 'ok' });
  });

  it('refuses /stats and /metrics without the admin token or with a wrong one', async () => {
    for (const route of ['/stats', '/metrics']) {
      const missing = await request(`${proxy.adminUrl}${route}`);
      expect(missing.statusCode).toBe(401);
      expect(await missing.body.json()).toEqual({ error: 'missing admin token' });
      for (const header of ['Bearer wrong', `Bearer ${ADMIN_TOKEN}x`, ADMIN_TOKEN, `Basic ${ADMIN_TOKEN}`]) {
        const wrong = await request(`${proxy.adminUrl}${route}`, { headers: { authorization: header } });
        expect(wrong.statusCode).toBe(401);
        expect(await wrong.body.json()).toEqual({ error: 'invalid admin token' });
      }
    }
  });

  it('has no admin routes on the client listener', async () => {
    for (const route of ['/stats', '/metrics', '/healthz']) {
      const anonymous = await request(`${proxy.url}${route}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(anonymous.statusCode).toBe(401);
      expect(await anonymous.body.json()).toEqual({ error: 'missing token' });
      // With a client token the path simply goes to a backend.
      const proxied = await request(`${proxy.url}${route}`, { headers: { 'x-auth-token': CLIENT_TOKEN } });
      const echo = (await proxied.body.json()) as { name: string; url: string };
      expect(['a1', 'a2']).toContain(echo.name);
      expect(echo.url).toBe(route);
    }
  });

  it('reports /stats that parse with the CLI schema and match the traffic sent', async () => {
    const before = proxyStats.parse(await (await request(`${proxy.adminUrl}/stats`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).body.json());
    const send = async (headers: Record<string, string>, expectStatus: number): Promise<void> => {
      const res = await request(`${proxy.url}/count`, { headers });
      expect(res.statusCode).toBe(expectStatus);
      await res.body.dump();
    };
    for (let i = 0; i < 12; i++) await send({ 'x-auth-token': CLIENT_TOKEN }, 200);
    for (let i = 0; i < 5; i++) await send({ 'x-auth-token': 'reports-token' }, 200);
    for (let i = 0; i < 3; i++) await send({}, 401);
    for (let i = 0; i < 4; i++) await send({ 'x-auth-token': 'bogus' }, 401);

    const res = await request(`${proxy.adminUrl}/stats`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.headers['content-type']).toBe('application/json');
    const after = proxyStats.parse(await res.body.json());
    expect(after.algorithm).toBe('round-robin');
    expect(after.pid).toBe(proxy.child.pid);
    expect(after.uptime_ms).toBeGreaterThanOrEqual(before.uptime_ms);
    expect(after.requests.total - before.requests.total).toBe(24);
    expect(after.requests.by_class['2xx'] - before.requests.by_class['2xx']).toBe(17);
    expect(after.requests.by_class['4xx'] - before.requests.by_class['4xx']).toBe(7);
    expect(after.requests.in_flight).toBe(0);
    expect(after.auth.accepted - before.auth.accepted).toBe(17);
    expect(after.auth.denied.missing - before.auth.denied.missing).toBe(3);
    expect(after.auth.denied.invalid - before.auth.denied.invalid).toBe(4);
    expect(after.auth.by_token.default! - before.auth.by_token.default!).toBe(12);
    expect(after.auth.by_token.reports! - before.auth.by_token.reports!).toBe(5);
    expect(JSON.stringify(after)).not.toContain(CLIENT_TOKEN);
    // One fresh client connection shows up as exactly one more accepted connection.
    await rawExchange(proxy.port, 'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const later = await proxy.stats();
    expect(later.connections.accepted - after.connections.accepted).toBe(1);
    expect(later.connections.rejected).toBe(0);
    const forwarded = after.backends.reduce((n, b) => n + b.requests, 0) - before.backends.reduce((n, b) => n + b.requests, 0);
    expect(forwarded).toBe(17);
    for (const [i, b] of after.backends.entries()) {
      expect(b.name).toBe(backends[i]!.name);
      expect(b.address).toBe(backends[i]!.address);
      expect(b.state).toBe('up');
      expect(b.weight).toBe(1);
      expect(b.errors).toBe(0);
      expect(b.bytes_in).toBeGreaterThan(before.backends[i]!.bytes_in);
      expect(b.bytes_out).toBeGreaterThan(before.backends[i]!.bytes_out);
      expect(b.latency_ms.p50).toBeGreaterThan(0);
      expect(b.latency_ms.p99).toBeGreaterThanOrEqual(b.latency_ms.p50);
      expect(b.health.checks).toBeGreaterThan(0);
    }
    // Each backend saw exactly what the proxy says it forwarded there.
    const seen = backends.map((b) => b.seen.filter((s) => s.url === '/count').length);
    expect(seen).toEqual(after.backends.map((b, i) => b.requests - before.backends[i]!.requests));
  });

  it('serves /metrics in the Prometheus text format with the same counters', async () => {
    const res = await request(`${proxy.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const { types, samples } = parsePrometheus(await res.body.text());
    const stats = await proxy.stats();
    const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    expect(types.get('uproxy_requests_total')).toBe('counter');
    expect(types.get('uproxy_backend_up')).toBe('gauge');
    expect(value('uproxy_requests_total', { class: '2xx' })).toBe(stats.requests.by_class['2xx']);
    expect(value('uproxy_auth_denied_total', { reason: 'missing' })).toBe(stats.auth.denied.missing);
    expect(value('uproxy_auth_accepted_total', { token: 'reports' })).toBe(stats.auth.by_token.reports);
    for (const b of stats.backends) {
      expect(value('uproxy_backend_up', { backend: b.name })).toBe(1);
      expect(value('uproxy_backend_requests_total', { backend: b.name })).toBe(b.requests);
      expect(value('uproxy_backend_latency_seconds', { backend: b.name, quantile: '0.99' })).toBeGreaterThan(0);
    }
  });

  it('answers 404 for unknown admin routes', async () => {
    const res = await request(`${proxy.adminUrl}/nope`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.statusCode).toBe(404);
    await res.body.dump();
  });
});
