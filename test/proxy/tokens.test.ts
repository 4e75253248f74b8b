import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { pollUntil, steadyLoad } from './support/load.js';
import { ADMIN_TOKEN, CLIENT_TOKEN, runProxyRaw, sha256hex, startProxy, type RunningProxy } from './support/proxy.js';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

describe('proxy: client tokens changed live through the admin API', () => {
  let backend: TestBackend;
  let proxy: RunningProxy;

  beforeAll(async () => {
    backend = await startBackend('t1');
    proxy = await startProxy({
      backends: [{ name: backend.name, address: backend.address }],
      // A token given on the command line already past its expiry.
      args: ['--token', `stale:${sha256hex('stale-secret')}:1000000000`],
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
  });

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const res = await request(`${proxy.adminUrl}${path}`, {
      method: method as 'PUT',
      headers: { ...admin, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.statusCode, json: await res.body.json() };
  };
  const errorOf = async (method: string, path: string, body?: unknown): Promise<[number, string]> => {
    const { status, json } = await call(method, path, body);
    return [status, (json as { error: string }).error];
  };
  const get = async (secret: string, dispatcher?: Agent): Promise<{ status: number; text: string }> => {
    const res = await request(`${proxy.url}/x`, { headers: { 'x-auth-token': secret }, dispatcher });
    return { status: res.statusCode, text: await res.body.text() };
  };
  const listed = async () => (await call('GET', '/tokens')).json as { name: string; expires: number | null; requests: number; last_used: number | null }[];

  it('refuses bad input with 400 and says what is wrong', async () => {
    const anonymous = await request(`${proxy.adminUrl}/tokens`);
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.dump();
    const hash = sha256hex('x');
    expect(await errorOf('PUT', '/tokens/a', 'not json')).toEqual([400, expect.stringMatching(/expected a JSON object like \{"sha256"/)]);
    expect(await errorOf('PUT', '/tokens/a', {})).toEqual([400, expect.stringMatching(/sha256 is required/)]);
    expect(await errorOf('PUT', '/tokens/a', { sha256: 'abc' })).toEqual([400, expect.stringMatching(/SHA-256 as 64 hex digits/)]);
    expect(await errorOf('PUT', '/tokens/a', { sha256: hash, expires: 'soon' })).toEqual([400, expect.stringMatching(/expiry .* Unix seconds/)]);
    expect(await errorOf('PUT', '/tokens/a', { sha256: hash, colour: 1 })).toEqual([400, expect.stringMatching(/unknown key; the keys are sha256 and expires/)]);
    expect(await errorOf('PUT', '/tokens/bad%20name', { sha256: hash })).toEqual([400, expect.stringMatching(/token name must be 1-63 characters/)]);
    expect(await errorOf('PUT', `/tokens/${'n'.repeat(64)}`, { sha256: hash })).toEqual([400, expect.stringMatching(/token name must be/)]);
    expect(await errorOf('DELETE', '/tokens/nope')).toEqual([404, expect.stringMatching(/no such token/)]);
    expect((await call('POST', '/tokens')).status).toBe(405);
    expect((await call('GET', '/tokens/default')).status).toBe(405);
    expect((await listed()).map((t) => t.name)).toEqual(['default', 'stale']);
  });

  it('adds and revokes tokens under keep-alive load without failing a request of the others', async () => {
    const load = steadyLoad(proxy.url, { clients: 6, maxMs: 30_000, maxRequests: 200_000 });
    const before = (await proxy.stats()).auth.denied.invalid;
    try {
      await pollUntil('traffic', async () => load.result.ok > 50);
      const client = new Agent({ connections: 1 });
      for (let i = 0; i < 20; i++) {
        const secret = `live-secret-${i}`;
        expect((await call('PUT', `/tokens/live-${i}`, { sha256: sha256hex(secret) })).status).toBe(201);
        expect((await get(secret, client)).status).toBe(200);
        expect((await call('DELETE', `/tokens/live-${i}`)).json).toEqual({ name: `live-${i}`, state: 'revoked' });
        // The same keep-alive connection, the same bytes: its cached verdict does not outlive the revocation.
        expect(await get(secret, client)).toEqual({ status: 401, text: '{"error":"invalid token"}' });
      }
      await client.close();
      const served = load.result.ok;
      await pollUntil('more traffic after the changes', async () => load.result.ok > served + 50);
    } finally {
      await load.stop();
    }
    expect(load.result.failures).toEqual([]);
    expect(load.result.ok).toBeGreaterThan(100);
    const stats = await proxy.stats();
    expect(stats.auth.denied.invalid - before).toBe(20);
    expect(Object.keys(stats.auth.by_token)).toEqual(['default', 'stale']);
  });

  it('replaces the hash of a token by name, keeping its counters', async () => {
    expect((await call('PUT', '/tokens/rotated', { sha256: sha256hex('first') })).status).toBe(201);
    expect((await get('first')).status).toBe(200);
    expect((await call('PUT', '/tokens/rotated', { sha256: sha256hex('second') })).json).toEqual({ name: 'rotated', expires: null, state: 'replaced' });
    expect((await get('first')).status).toBe(401);
    expect((await get('second')).status).toBe(200);
    const rotated = (await listed()).find((t) => t.name === 'rotated')!;
    expect(rotated.requests).toBe(2);
    expect(rotated.last_used).toBeGreaterThanOrEqual(nowSeconds() - 5);
    expect(JSON.stringify(await listed())).not.toContain(sha256hex('second'));
    expect((await call('DELETE', '/tokens/rotated')).status).toBe(200);
  });

  it('refuses an expired token with 401 and its own reason in /stats and /metrics', async () => {
    const expires = nowSeconds() + 2;
    expect((await call('PUT', '/tokens/brief', { sha256: sha256hex('brief-secret'), expires })).json).toEqual({ name: 'brief', expires, state: 'added' });
    const client = new Agent({ connections: 1 });
    expect((await get('brief-secret', client)).status).toBe(200);
    const before = (await proxy.stats()).auth.denied;
    await pollUntil('the token to expire', async () => (await get('brief-secret', client)).status === 401, 5_000);
    expect(await get('brief-secret', client)).toEqual({ status: 401, text: '{"error":"token expired"}' });
    expect(await get('stale-secret')).toEqual({ status: 401, text: '{"error":"token expired"}' });
    await client.close();
    const after = (await proxy.stats()).auth.denied;
    expect(after.expired! - before.expired!).toBe(3);
    expect(after.invalid).toBe(before.invalid);
    const metrics = await (await request(`${proxy.adminUrl}/metrics`, { headers: admin })).body.text();
    expect(metrics).toMatch(new RegExp(`uproxy_auth_denied_total\\{reason="expired"\\} ${after.expired}\\n`));
    expect(metrics).toMatch(/^uproxy_auth_token_last_used_seconds\{token="brief"\} [1-9]\d{9}$/m);
    expect(metrics).toMatch(/^uproxy_auth_token_last_used_seconds\{token="default"\} \d+$/m);
    const brief = (await listed()).find((t) => t.name === 'brief')!;
    expect(brief.expires).toBe(expires);
    expect(brief.requests).toBeGreaterThan(0); // the accepted ones while waiting for the expiry
    // A new expiry brings it back.
    expect((await call('PUT', '/tokens/brief', { sha256: sha256hex('brief-secret'), expires: 0 })).status).toBe(200);
    expect((await get('brief-secret')).status).toBe(200);
  });

  it('never revokes the last token', async () => {
    for (const name of (await listed()).map((t) => t.name).slice(1)) expect((await call('DELETE', `/tokens/${name}`)).status).toBe(200);
    expect(await errorOf('DELETE', '/tokens/default')).toEqual([409, expect.stringMatching(/last token; the proxy needs at least one/)]);
    expect((await get(CLIENT_TOKEN)).status).toBe(200);
  });
});

describe('proxy: --token with an expiry', () => {
  const hash = sha256hex('x');
  it.each([
    [`a:${hash}:soon`, /--token: value: the expiry after the hash must be Unix seconds/],
    [`a:${hash}:0`, /--token: value: the expiry after the hash must be Unix seconds/],
    [`a:${hash}:99999999999999`, /--token: value: the expiry after the hash must be Unix seconds/],
  ])('refuses %s', async (token, message) => {
    const r = await runProxyRaw(['--backend', 'b=127.0.0.1:9', '--token', token]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('refuses a name given twice', async () => {
    const r = await runProxyRaw(['--backend', 'b=127.0.0.1:9', '--token', `a:${hash}`, '--token', `a:${sha256hex('y')}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/token name 'a' is used twice/);
  });
});
