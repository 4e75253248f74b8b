import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { CLIENT_TOKEN, rawExchange, splitResponses, startProxy, type RunningProxy } from './support/proxy.js';

describe('proxy: token authentication and header rewriting', () => {
  let backend: TestBackend;
  let proxy: RunningProxy;

  beforeAll(async () => {
    backend = await startBackend('solo');
    proxy = await startProxy({
      backends: [{ name: 'solo', address: backend.address }],
      tokens: [{ name: 'default', secret: CLIENT_TOKEN }, { name: 'ci', secret: 'second-token' }],
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
  });

  it('answers 401 with a JSON body when the token is missing, and forwards nothing', async () => {
    const before = backend.seen.length;
    const res = await request(`${proxy.url}/private`);
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toBe('application/json');
    expect(await res.body.json()).toEqual({ error: 'missing token' });
    expect(backend.seen.length).toBe(before);
  });

  it('answers 401 for a wrong token, and forwards nothing', async () => {
    const before = backend.seen.length;
    for (const wrong of ['nope', `${CLIENT_TOKEN}x`, CLIENT_TOKEN.slice(0, -1), '']) {
      const res = await request(`${proxy.url}/private`, { headers: { 'x-auth-token': wrong } });
      expect(res.statusCode).toBe(401);
      expect(await res.body.json()).toEqual({ error: 'invalid token' });
    }
    expect(backend.seen.length).toBe(before);
  });

  it('forwards a request with a valid token and strips the token before the backend', async () => {
    for (const secret of [CLIENT_TOKEN, 'second-token']) {
      const res = await request(`${proxy.url}/hello?x=1`, { headers: { 'x-auth-token': secret } });
      expect(res.statusCode).toBe(200);
      const echo = (await res.body.json()) as { name: string; url: string; headers: Record<string, string> };
      expect(echo.name).toBe('solo');
      expect(echo.url).toBe('/hello?x=1');
      expect(echo.headers['x-auth-token']).toBeUndefined();
      expect(JSON.stringify(echo)).not.toContain(secret);
    }
  });

  it('keeps the connection usable after a 401 (keep-alive intact)', async () => {
    const raw = await rawExchange(proxy.port,
      'GET /a HTTP/1.1\r\nHost: t\r\n\r\n' +
      `GET /b HTTP/1.1\r\nHost: t\r\nX-Auth-Token: wrong\r\n\r\n` +
      `GET /c HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`,
      (got) => splitResponses(got).length === 3);
    const responses = splitResponses(raw);
    expect(responses.map((r) => r.status)).toEqual([401, 401, 200]);
    expect(responses[0]!.headers.connection).toBeUndefined();
    expect(JSON.parse(responses[2]!.body).url).toBe('/c');
  });

  it('checks every request of a keep-alive connection, also when the token changes between requests', async () => {
    // The proxy remembers a connection's last token and verdict: a changed token, even one
    // byte or one length apart, must be judged afresh every time.
    const nearMiss = `${CLIENT_TOKEN.slice(0, -1)}X`;
    const tokens = [CLIENT_TOKEN, nearMiss, CLIENT_TOKEN, 'second-token', CLIENT_TOKEN, `${CLIENT_TOKEN}x`,
      nearMiss, nearMiss, CLIENT_TOKEN, 'x'.repeat(300), CLIENT_TOKEN];
    const before = backend.seen.length;
    const raw = await rawExchange(proxy.port,
      tokens.map((t, i) => `GET /k${i} HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${t}\r\n\r\n`).join(''),
      (got) => splitResponses(got).length === tokens.length);
    const responses = splitResponses(raw);
    expect(responses.map((r) => r.status)).toEqual([200, 401, 200, 200, 200, 401, 401, 401, 200, 401, 200]);
    expect(backend.seen.length - before).toBe(6);
    expect(JSON.stringify(backend.seen.slice(before))).not.toContain(CLIENT_TOKEN);
  });

  it('discards the body of a refused request and serves the next one on the same connection', async () => {
    const body = 'x'.repeat(5000);
    const raw = await rawExchange(proxy.port,
      `POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
      `GET /after HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`,
      (got) => splitResponses(got).length === 2);
    const [refused, served] = splitResponses(raw);
    expect(refused!.status).toBe(401);
    expect(served!.status).toBe(200);
    expect(JSON.parse(served!.body).url).toBe('/after');
  });

  it('preserves Host, sets X-Forwarded-*, drops hop-by-hop and untrusted forwarding headers', async () => {
    const raw = await rawExchange(proxy.port,
      'GET /hdr HTTP/1.1\r\nHost: api.example.test\r\n' +
      `X-Auth-Token: ${CLIENT_TOKEN}\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n` +
      'Connection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: drop me\r\nKeep-Alive: timeout=5\r\n' +
      'TE: trailers\r\nX-Custom: kept\r\n\r\n',
      (got) => splitResponses(got).length === 1);
    const [res] = splitResponses(raw);
    const echo = JSON.parse(res!.body) as { headers: Record<string, string> };
    expect(echo.headers.host).toBe('api.example.test');
    expect(echo.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(echo.headers['x-forwarded-proto']).toBe('http');
    expect(echo.headers['x-custom']).toBe('kept');
    for (const gone of ['x-secret-hop', 'keep-alive', 'te', 'x-auth-token']) expect(echo.headers[gone]).toBeUndefined();
    // The backend's own Connection/Keep-Alive headers do not reach the client either.
    expect(res!.headers['keep-alive']).toBeUndefined();
  });

  it('answers an HTTP/1.0 client and closes its connection', async () => {
    const raw = await rawExchange(proxy.port, `GET /old HTTP/1.0\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`);
    const [res] = splitResponses(raw);
    expect(res!.status).toBe(200);
    const echo = JSON.parse(res!.body) as { url: string; httpVersion: string };
    expect(echo.url).toBe('/old');
  });

  it('keeps an HTTP/1.0 keep-alive client open', async () => {
    const req = `GET /old-ka HTTP/1.0\r\nConnection: keep-alive\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`;
    const raw = await rawExchange(proxy.port, req + req, (got) => splitResponses(got).length === 2);
    const responses = splitResponses(raw);
    expect(responses.map((r) => r.status)).toEqual([200, 200]);
    expect(responses[0]!.headers.connection).toBe('keep-alive');
  });
});

describe('proxy: trusted proxies', () => {
  it('appends to X-Forwarded-For from a trusted peer', async () => {
    const backend = await startBackend('solo');
    const proxy = await startProxy({ backends: [{ name: 'solo', address: backend.address }], args: ['--trusted-proxy', '127.0.0.0/8'] });
    try {
      const res = await request(`${proxy.url}/t`, {
        headers: { 'x-auth-token': CLIENT_TOKEN, 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' },
      });
      const echo = (await res.body.json()) as { headers: Record<string, string> };
      expect(echo.headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
      expect(echo.headers['x-forwarded-proto']).toBe('https');
    } finally {
      await proxy.stop();
      await backend.close();
    }
  });
});
