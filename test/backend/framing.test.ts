import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_TOKEN, freePort, rawExchange, splitResponses, startProxy, type RunningProxy } from '../proxy/support/proxy.js';
import { pollUntil } from '../proxy/support/load.js';

// How the default backend app (templates/backend) frames requests: llhttp decides where each
// one ends, so a body can never be read as a request of its own. The first test is the
// response desync of security issue 12, through the real proxy; the others talk to the
// backend directly. UPROXY_BACKEND_BIN runs them against another build of the backend (that
// is how the desync test was seen to fail against the hand-framed server.c before llhttp).
const TEMPLATE = fileURLToPath(new URL('../../templates/backend', import.meta.url));

type Response = ReturnType<typeof splitResponses>[number];

/** The responses in `raw` whose bodies are complete. */
function complete(raw: string): Response[] {
  return splitResponses(raw).filter((r) => r.body.length === Number(r.headers['content-length'] ?? 0));
}

/** One client connection: write, then wait for a number of responses or for the server to close. */
class Client {
  private got = '';
  private closed = false;
  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d) => (this.got += d.toString('latin1')));
    sock.on('close', () => (this.closed = true));
    sock.on('error', () => undefined);
  }
  static open(port: number): Promise<Client> {
    return new Promise((ok, fail) => {
      const sock = net.connect(port, '127.0.0.1', () => ok(new Client(sock)));
      sock.once('error', fail);
    });
  }
  send(data: string): void {
    this.sock.write(data, 'latin1');
  }
  /** Everything received so far. */
  text(): string {
    return this.got;
  }
  /** Waits for `count` complete responses in all received so far (at most 5 s). */
  async responses(count: number): Promise<Response[]> {
    await pollUntil(`${count} responses`, async () => complete(this.got).length >= count || this.closed);
    return complete(this.got);
  }
  /** Waits for the server to close the connection (at most 5 s); true if it did. */
  async serverClosed(): Promise<boolean> {
    await pollUntil('the backend to close the connection', async () => this.closed).catch(() => undefined);
    return this.closed;
  }
  destroy(): void {
    this.sock.destroy();
  }
}

describe('backend template: request framing', () => {
  let build: string;
  let binary: string;
  const backends: ChildProcess[] = [];
  const clients: Client[] = [];
  let proxy: RunningProxy | undefined;

  beforeAll(() => {
    build = mkdtempSync(join(tmpdir(), 'uproxy-backend-framing-'));
    if (process.env.UPROXY_BACKEND_BIN) {
      binary = resolve(process.env.UPROXY_BACKEND_BIN);
    } else {
      execFileSync('make', ['-C', TEMPLATE, `BUILD=${build}`], { stdio: 'ignore' });
      binary = join(build, 'backend');
    }
  });
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await proxy?.stop().catch(() => undefined);
    for (const b of backends) if (b.exitCode === null) b.kill('SIGKILL');
    rmSync(build, { recursive: true, force: true });
  });

  async function startBackend(name: string): Promise<number> {
    const port = await freePort();
    const child = spawn(binary, ['--listen', `127.0.0.1:${port}`, '--name', name], { stdio: ['ignore', 'ignore', 'pipe'] });
    backends.push(child);
    let log = '';
    child.stderr!.on('data', (d) => (log += d));
    await pollUntil(`backend ${name} to listen`, async () => log.includes('listening'));
    return port;
  }

  async function connect(port: number): Promise<Client> {
    const c = await Client.open(port);
    clients.push(c);
    return c;
  }

  it('a chunked body that looks like a request does not answer the next clients behind the proxy', async () => {
    const ports = [await startBackend('b1'), await startBackend('b2'), await startBackend('b3')];
    proxy = await startProxy({ backends: ports.map((port, i) => ({ name: `b${i + 1}`, address: `127.0.0.1:${port}` })) });
    // Chunk data of 0x25 bytes that reads like the rest of a request head `… /nope HTTP/1.1`
    // with a Content-Length of 60 (which would swallow the next request on the connection).
    const smuggle = `POST / HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n` +
      '25;a=" /nope HTTP/1.1"\r\nX-Smuggled: 1\r\nContent-Length: 60\r\n\r\n\r\n0\r\n\r\n';
    for (let i = 0; i < ports.length; i++) {
      const got = await rawExchange(proxy.port, smuggle, (g) => complete(g).length > 0);
      expect(complete(got)[0]!.status).toBe(200);
    }
    const statuses: number[] = [];
    for (let i = 0; i < 3 * ports.length; i++) {
      const get = `GET / HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`;
      const got = await rawExchange(proxy.port, get, (g) => complete(g).length > 0);
      statuses.push(complete(got)[0]!.status);
    }
    expect(statuses).toEqual(Array(3 * ports.length).fill(200));
    await proxy.stop();
    proxy = undefined;
  });

  describe('directly', () => {
    let port: number;
    beforeAll(async () => {
      port = await startBackend('direct');
    });

    it('skips a chunked body and answers the next request on the same connection', async () => {
      const c = await connect(port);
      c.send('POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      expect((await c.responses(1)).map((r) => r.status)).toEqual([200]);
      c.send('GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
      const [, health] = await c.responses(2);
      expect(health).toMatchObject({ status: 200, body: 'ok\n' });
    });

    it('answers the issue-12 chunked body with one response and keeps the connection', async () => {
      const c = await connect(port);
      c.send('POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '25;a=" /nope HTTP/1.1"\r\nX-Smuggled: 1\r\nContent-Length: 60\r\n\r\n\r\n0\r\n\r\n' +
        'GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
      const responses = await c.responses(2);
      expect(responses.map((r) => r.status)).toEqual([200, 200]);
      expect(responses[1]!.body).toBe('ok\n');
    });

    it.each([
      ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
      ['a bad chunk size', 'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
      ['a malformed request line', 'GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n'],
      ['two Content-Lengths', 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    ])('answers %s with 400 and closes, never reading what follows as a request', async (_what, request) => {
      const c = await connect(port);
      c.send(`${request}GET /health HTTP/1.1\r\nHost: t\r\n\r\n`);
      const responses = await c.responses(1);
      expect(await c.serverClosed()).toBe(true);
      expect(responses.map((r) => r.status)).toEqual([400]);
      expect(responses[0]!.headers.connection).toBe('close');
    });

    it('answers pipelined requests in order', async () => {
      const c = await connect(port);
      c.send(['/health', '/', '/nope', '/health?x=1', '/index.html'].map((p) => `GET ${p} HTTP/1.1\r\nHost: t\r\n\r\n`).join(''));
      const responses = await c.responses(5);
      expect(responses.map((r) => r.status)).toEqual([200, 200, 404, 200, 200]);
      expect(responses.map((r) => r.body.slice(0, 9))).toEqual(['ok\n', '<!doctype', 'not found', 'ok\n', '<!doctype']);
    });

    it('routes on the path without its query string', async () => {
      const c = await connect(port);
      c.send('GET /?x HTTP/1.1\r\nHost: t\r\n\r\nGET /health?x=1 HTTP/1.1\r\nHost: t\r\n\r\n');
      const [page, health] = await c.responses(2);
      expect(page!.status).toBe(200);
      expect(page!.body).toContain('<h1>Hello from direct</h1>');
      expect(health).toMatchObject({ status: 200, body: 'ok\n' });
    });

    it('closes after HTTP/1.0 and Connection: close, keeps HTTP/1.0 with keep-alive', async () => {
      for (const request of ['GET /health HTTP/1.0\r\n\r\n', 'GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n']) {
        const c = await connect(port);
        c.send(request);
        expect((await c.responses(1))[0]!.headers.connection).toBe('close');
        expect(await c.serverClosed()).toBe(true);
      }
      const c = await connect(port);
      c.send('GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      expect((await c.responses(2)).map((r) => r.status)).toEqual([200, 200]);
    });

    it('answers HEAD without a body', async () => {
      const c = await connect(port);
      c.send('HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n');
      await pollUntil('the GET after the HEAD', async () => c.text().includes('\r\n\r\nok\n'));
      const raw = c.text();
      expect(raw.split('HTTP/1.1 ').slice(1).map((r) => r.slice(0, 3))).toEqual(['200', '200']);
      expect(raw).not.toContain('<!doctype');
    });

    // Each sends nothing past the byte that is refused: unread input at close() would make the
    // kernel reset the connection, and a reset can overtake the answer.
    it('answers a head over 8 KiB with 431 and a body over 1 MiB with 413, then closes', async () => {
      const big = await connect(port);
      const line = 'GET / HTTP/1.1\r\nHost: t\r\nX-Filler: ';
      big.send(line + 'a'.repeat(8192 - line.length));
      expect((await big.responses(1)).map((r) => r.status)).toEqual([431]);
      expect(await big.serverClosed()).toBe(true);
      const declared = await connect(port);
      declared.send(`POST / HTTP/1.1\r\nHost: t\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`);
      expect((await declared.responses(1)).map((r) => r.status)).toEqual([413]);
      expect(await declared.serverClosed()).toBe(true);
      const chunked = await connect(port);
      const size = 1024 * 1024 + 1;
      chunked.send(`POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${size.toString(16)}\r\n${'x'.repeat(size)}`);
      expect((await chunked.responses(1)).map((r) => r.status)).toEqual([413]);
      expect(await chunked.serverClosed()).toBe(true);
    });
  });
});
