import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadSha256, patternChunk, startBackend, type TestBackend } from './support/backend.js';
import { CLIENT_TOKEN, rawExchange, splitResponses, startProxy, type RunningProxy } from './support/proxy.js';

const auth = { 'x-auth-token': CLIENT_TOKEN };
const TWENTY_MB = 20 * 1024 * 1024;

describe('proxy: connections and bodies', () => {
  let backend: TestBackend;
  let proxy: RunningProxy;

  beforeAll(async () => {
    backend = await startBackend('solo');
    proxy = await startProxy({ backends: [{ name: 'solo', address: backend.address }] });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
  });

  it('reuses upstream connections (keep-alive pool) across sequential requests', async () => {
    const before = backend.seen.length;
    const agent = new Agent({ connections: 1 });
    try {
      for (let i = 0; i < 50; i++) {
        const res = await request(`${proxy.url}/ka/${i}`, { headers: auth, dispatcher: agent });
        expect(res.statusCode).toBe(200);
        await res.body.dump();
      }
    } finally {
      await agent.close();
    }
    const sockets = new Set(backend.seen.slice(before).map((s) => s.socketId));
    expect(backend.seen.length - before).toBe(50);
    expect(sockets.size).toBe(1);
    const stats = await proxy.stats();
    expect(stats.backends[0]!.idle_connections).toBe(1);
  });

  it('reuses pooled upstream connections across different client connections', async () => {
    const before = backend.seen.length;
    for (let i = 0; i < 10; i++) {
      // A fresh client connection each time (Connection: close on the client side).
      const raw = await rawExchange(proxy.port, `GET /fresh/${i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`);
      expect(splitResponses(raw)[0]!.status).toBe(200);
    }
    expect(new Set(backend.seen.slice(before).map((s) => s.socketId)).size).toBe(1);
  });

  it('streams a 20 MB chunked upload intact', async () => {
    const expected = createHash('sha256');
    async function* body(): AsyncGenerator<Buffer> {
      for (let sent = 0, i = 0; sent < TWENTY_MB; i++) {
        const chunk = patternChunk(1000 + i, Math.min(256 * 1024, TWENTY_MB - sent));
        expected.update(chunk);
        sent += chunk.length;
        yield chunk;
      }
    }
    const res = await request(`${proxy.url}/upload`, { method: 'POST', headers: auth, body: Readable.from(body()) });
    expect(res.statusCode).toBe(200);
    const echo = (await res.body.json()) as { bodyBytes: number; bodySha256: string; headers: Record<string, string> };
    expect(echo.headers['transfer-encoding']).toBe('chunked');
    expect(echo.bodyBytes).toBe(TWENTY_MB);
    expect(echo.bodySha256).toBe(expected.digest('hex'));
  });

  it('streams a 20 MB upload with Content-Length intact', async () => {
    const data = patternChunk(7, TWENTY_MB);
    const res = await request(`${proxy.url}/upload-cl`, { method: 'PUT', headers: auth, body: data });
    const echo = (await res.body.json()) as { bodyBytes: number; bodySha256: string };
    expect(echo.bodyBytes).toBe(TWENTY_MB);
    expect(echo.bodySha256).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('streams a 20 MB chunked download intact', async () => {
    const res = await request(`${proxy.url}/download?bytes=${TWENTY_MB}`, { headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    const hash = createHash('sha256');
    let n = 0;
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer);
      n += (chunk as Buffer).length;
    }
    expect(n).toBe(TWENTY_MB);
    expect(hash.digest('hex')).toBe(downloadSha256(TWENTY_MB));
  });

  it('answers pipelined requests in order', async () => {
    const paths = ['/p/1', '/slow?ms=300', '/p/3', '/p/4'];
    const raw = await rawExchange(proxy.port,
      paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`).join(''),
      (got) => splitResponses(got).length === paths.length);
    const urls = splitResponses(raw).map((r) => (JSON.parse(r.body) as { url: string }).url);
    expect(urls).toEqual(paths);
  });

  it('answers HEAD without a body and keeps the connection in sync', async () => {
    const raw = await rawExchange(proxy.port,
      `HEAD /h HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n` +
      `GET /after-head HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`,
      (got) => got.includes('/after-head') && got.endsWith('}'));
    const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    const rest = raw.slice(raw.indexOf('\r\n\r\n') + 4);
    expect(rest).toMatch(/^HTTP\/1\.1 200/);
    expect(rest).toContain('"url":"/after-head"');
  });

  it('rejects a malformed request with 400 and closes', async () => {
    const before = backend.seen.length;
    const raw = await rawExchange(proxy.port, 'GET / HTTP/1.1\r\nHost t\r\n\r\n');
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw).toContain('Connection: close');
    expect(backend.seen.length).toBe(before);
  });
});
