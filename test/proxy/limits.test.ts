import net from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { startBackendProcess, type BackendProcess } from './support/backend-process.js';
import { pollUntil } from './support/load.js';
import { CLIENT_TOKEN, rawExchange, splitResponses, startProxy, type RunningProxy } from './support/proxy.js';

const T = `X-Auth-Token: ${CLIENT_TOKEN}\r\n`;

/** Opens a connection and resolves with it once connected. */
function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves with everything received once the peer closes, and how long that took. */
function untilClosed(sock: net.Socket, timeoutMs = 10_000): Promise<{ got: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms; got: ${got}`)), timeoutMs);
    sock.on('data', (d) => (got += d.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', () => { clearTimeout(timer); resolve({ got, ms: Date.now() - started }); });
  });
}

describe('proxy: limits and timeouts', () => {
  let backend: TestBackend | undefined;
  let proxy: RunningProxy | undefined;
  const extra: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    await backend?.close();
    backend = undefined;
    for (const c of extra.splice(0)) await c();
  });
  const start = async (args: string[]): Promise<RunningProxy> => {
    backend = await startBackend('b');
    proxy = await startProxy({ backends: [{ name: 'b', address: backend.address }], args });
    return proxy;
  };

  it('answers 431 and closes when the request head exceeds --max-header-bytes', async () => {
    const p = await start(['--max-header-bytes', '2048']);
    const ok = await rawExchange(p.port, `GET /fits HTTP/1.1\r\nHost: t\r\n${T}X-Pad: ${'a'.repeat(1500)}\r\nConnection: close\r\n\r\n`);
    expect(splitResponses(ok)[0]!.status).toBe(200);
    const got = await rawExchange(p.port, `GET /big HTTP/1.1\r\nHost: t\r\n${T}X-Pad: ${'a'.repeat(3000)}\r\n\r\n`);
    expect(got).toMatch(/^HTTP\/1\.1 431 /);
    expect(got).toContain('Connection: close');
    expect(backend!.seen.map((s) => s.url)).toEqual(['/fits']);
  });

  it('answers 431 and closes when a request has more than --max-headers headers', async () => {
    const p = await start(['--max-headers', '10']);
    const headers = (n: number): string => Array.from({ length: n }, (_, i) => `X-H${i}: v\r\n`).join('');
    const ok = await rawExchange(p.port, `GET /fits HTTP/1.1\r\nHost: t\r\n${T}${headers(6)}Connection: close\r\n\r\n`);
    expect(splitResponses(ok)[0]!.status).toBe(200);
    const got = await rawExchange(p.port, `GET /many HTTP/1.1\r\nHost: t\r\n${T}${headers(12)}\r\n`);
    expect(got).toMatch(/^HTTP\/1\.1 431 /);
    expect(got).toContain('too many headers');
    expect(backend!.seen.map((s) => s.url)).toEqual(['/fits']);
  });

  it('answers 408 to a slowloris client trickling its head past --header-timeout-ms, without slowing others', async () => {
    // The head takes ~6 s to drip in full, far past the 2 s timeout: a 200 means no timeout.
    const p = await start(['--header-timeout-ms', '2000']);
    const sock = await connect(p.port);
    const closed = untilClosed(sock);
    let slowlorisClosed = false;
    void closed.then(() => (slowlorisClosed = true), () => undefined);
    const head = `GET /slow-head HTTP/1.1\r\nHost: t\r\n${T}X-Drip: ${'d'.repeat(40)}\r\n\r\n`;
    let i = 0;
    const drip = setInterval(() => { if (!sock.destroyed && i < head.length - 4) sock.write(head[i++]!); }, 50);
    try {
      // Meanwhile a normal client is served while the slowloris connection is still held open:
      // a proxy blocked on it would answer only after the timeout closed it.
      const res = await request(`${p.url}/normal`, { headers: { 'x-auth-token': CLIENT_TOKEN } });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      expect(slowlorisClosed, 'the normal request waited for the slowloris connection to be closed').toBe(false);
      const { got, ms } = await closed;
      expect(got).toMatch(/^HTTP\/1\.1 408 /);
      expect(ms).toBeGreaterThanOrEqual(1_900);
    } finally {
      clearInterval(drip);
      sock.destroy();
    }
    expect(backend!.seen.map((s) => s.url)).toEqual(['/normal']);
  });

  it('closes a keep-alive connection idle for --idle-timeout-ms', async () => {
    const p = await start(['--idle-timeout-ms', '400']);
    const sock = await connect(p.port);
    const closed = untilClosed(sock);
    sock.write(`GET /once HTTP/1.1\r\nHost: t\r\n${T}\r\n`);
    const { got, ms } = await closed;
    expect(splitResponses(got)[0]!.status).toBe(200);
    expect(ms).toBeGreaterThanOrEqual(350);
    expect(ms).toBeLessThan(5_000);
  });

  it('counts --idle-timeout-ms from the last request on a connection, not the first', async () => {
    const p = await start(['--idle-timeout-ms', '1500']);
    const sock = await connect(p.port);
    const closed = untilClosed(sock, 20_000);
    // Six requests 300 ms apart span longer than the idle timeout: each one must push it out.
    const started = Date.now();
    for (let i = 0; i < 6; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 300));
      sock.write(`GET /tick${i} HTTP/1.1\r\nHost: t\r\n${T}\r\n`);
    }
    const sentLastAt = Date.now() - started;
    const { got, ms } = await closed;
    expect(splitResponses(got).map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(ms - sentLastAt).toBeGreaterThanOrEqual(1_400);
  });

  it('answers 504 when the backend does not answer within --response-timeout-ms', async () => {
    const p = await start(['--response-timeout-ms', '300']);
    const t0 = Date.now();
    // The backend would answer 200 after 20 s: the 504 can only come from the proxy's timer.
    const res = await request(`${p.url}/slow?ms=20000`, { headers: { 'x-auth-token': CLIENT_TOKEN } });
    expect(res.statusCode).toBe(504);
    expect(await res.body.json()).toEqual({ error: 'backend response timed out' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  it('starts --response-timeout-ms once the request is forwarded, so a slow upload is not a 504', async () => {
    const p = await start(['--response-timeout-ms', '400']);
    const sock = await connect(p.port);
    const closed = untilClosed(sock);
    sock.write(`POST /upload HTTP/1.1\r\nHost: t\r\n${T}Content-Length: 6\r\nConnection: close\r\n\r\n`);
    // Six body bytes over ~1.5 s: the backend is receiving all along and answers at the end.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 250));
      sock.write('x');
    }
    const [res] = splitResponses((await closed).got);
    expect(res!.status).toBe(200);
    expect(JSON.parse(res!.body)).toMatchObject({ url: '/upload', bodyBytes: 6 });
  });

  it('answers 413 and closes for a body over --max-body-bytes (Content-Length or chunked)', async () => {
    const p = await start(['--max-body-bytes', '1000']);
    const ok = await request(`${p.url}/small`, { method: 'POST', headers: { 'x-auth-token': CLIENT_TOKEN }, body: 'x'.repeat(1000) });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
    const big = await rawExchange(p.port, `POST /big HTTP/1.1\r\nHost: t\r\n${T}Content-Length: 5000\r\n\r\n${'x'.repeat(5000)}`);
    expect(big).toMatch(/^HTTP\/1\.1 413 /);
    expect(big).toContain('Connection: close');
    const chunk = `${(800).toString(16)}\r\n${'y'.repeat(800)}\r\n`;
    const chunked = await rawExchange(p.port, `POST /big-chunked HTTP/1.1\r\nHost: t\r\n${T}Transfer-Encoding: chunked\r\n\r\n${chunk}${chunk}0\r\n\r\n`);
    expect(chunked).toMatch(/^HTTP\/1\.1 413 /);
    expect(backend!.seen.map((s) => s.url)).toEqual(['/small']);
  });

  it('answers 408 when a request body stalls for --stream-timeout-ms', async () => {
    const p = await start(['--stream-timeout-ms', '400']);
    const sock = await connect(p.port);
    const closed = untilClosed(sock);
    sock.write(`POST /stalled HTTP/1.1\r\nHost: t\r\n${T}Content-Length: 100\r\n\r\n${'z'.repeat(10)}`);
    const { got, ms } = await closed;
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
    expect(got).toContain('request body timed out');
    expect(ms).toBeGreaterThanOrEqual(350);
  });

  it('answers 503 at once over --max-connections without slowing the connections it holds', async () => {
    const p = await start(['--max-connections', '4']);
    const held = await Promise.all(Array.from({ length: 4 }, () => connect(p.port)));
    try {
      await pollUntil('the proxy to hold the 4 connections', async () => (await p.stats()).connections.active === 4);
      // Answered while all 4 are still held (they are released only in `finally`): a proxy that
      // queued the 5th until a slot freed would never answer it here.
      const over = await rawExchange(p.port, `GET /over HTTP/1.1\r\nHost: t\r\n${T}\r\n`);
      expect(over).toMatch(/^HTTP\/1\.1 503 /);
      expect(over).toContain('too many connections');
      // A held connection is served normally.
      const closed = untilClosed(held[0]!);
      held[0]!.write(`GET /held HTTP/1.1\r\nHost: t\r\n${T}Connection: close\r\n\r\n`);
      expect(splitResponses((await closed).got)[0]!.status).toBe(200);
      expect((await p.stats()).connections.rejected).toBeGreaterThanOrEqual(1);
    } finally {
      for (const s of held) s.destroy();
    }
  });

  it('answers 503, not a reset, to over-limit requests that arrived before the proxy accepted them', async () => {
    const p = await start(['--max-connections', '1']);
    const held = await connect(p.port);
    try {
      await pollUntil('the proxy to hold its one connection', async () => (await p.stats()).connections.active === 1);
      // Stopped, the proxy cannot accept: each request below is already in its socket when the
      // proxy accepts and rejects it. Closing such a socket unread resets it, and the client
      // may see ECONNRESET instead of the 503.
      p.child.kill('SIGSTOP');
      const answers = Array.from({ length: 50 }, (_, i) => rawExchange(p.port, `GET /burst${i} HTTP/1.1\r\nHost: t\r\n${T}\r\n`));
      await new Promise((r) => setTimeout(r, 300));
      p.child.kill('SIGCONT');
      for (const got of await Promise.all(answers)) expect(got).toMatch(/^HTTP\/1\.1 503 /);
    } finally {
      p.child.kill('SIGCONT');
      held.destroy();
    }
  });

  describe('upstream connect timeout', () => {
    /** A backend that passed its first health check, then stopped accepting (a full accept queue). */
    const frozenBackend = async (): Promise<{ frozen: BackendProcess; fillers: net.Socket[] }> => {
      const frozen = await startBackendProcess('frozen');
      const fillers: net.Socket[] = [];
      extra.push(async () => { for (const f of fillers) f.destroy(); await frozen.kill(); });
      return { frozen, fillers };
    };
    const freeze = async (frozen: BackendProcess, fillers: net.Socket[]): Promise<void> => {
      await frozen.freeze();
      // Fill its accept queue (backlog 1, so 2 connections fit): later SYNs are dropped, so
      // connects hang.
      let connected = 0;
      for (let i = 0; i < 4; i++) {
        const s = net.connect(frozen.port, '127.0.0.1', () => connected++);
        s.on('error', () => undefined);
        fillers.push(s);
      }
      await pollUntil('the frozen backend\'s accept queue to fill', async () => connected >= 2);
    };

    it('answers 502 after --connect-timeout-ms when the only backend never accepts', async () => {
      const { frozen, fillers } = await frozenBackend();
      proxy = await startProxy({ backends: [{ name: 'frozen', address: frozen.address }], args: ['--connect-timeout-ms', '300', '--health-interval-ms', '60000'] });
      await freeze(frozen, fillers);
      const t0 = Date.now();
      const res = await request(`${proxy.url}/hang`, { headers: { 'x-auth-token': CLIENT_TOKEN } });
      expect(res.statusCode).toBe(502);
      expect(await res.body.json()).toEqual({ error: 'backend connect timed out' });
      const ms = Date.now() - t0;
      expect(ms).toBeGreaterThanOrEqual(250);
      // Without the timer the connect would hang for the kernel's SYN retries (about 2 min).
      expect(ms).toBeLessThan(10_000);
    });

    it('retries on another backend when a connect times out', async () => {
      const { frozen, fillers } = await frozenBackend();
      backend = await startBackend('b');
      proxy = await startProxy({
        backends: [{ name: 'frozen', address: frozen.address }, { name: 'b', address: backend.address }],
        args: ['--connect-timeout-ms', '300', '--health-interval-ms', '60000'],
      });
      await freeze(frozen, fillers);
      for (let i = 0; i < 3; i++) {
        const res = await request(`${proxy.url}/r${i}`, { headers: { 'x-auth-token': CLIENT_TOKEN } });
        expect(res.statusCode).toBe(200);
        expect(((await res.body.json()) as { name: string }).name).toBe('b');
      }
    });
  });
});
