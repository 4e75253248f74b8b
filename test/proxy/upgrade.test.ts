import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pollUntil } from './support/load.js';
import { CLIENT_TOKEN, startProxy, type RunningProxy } from './support/proxy.js';

/** What the WebSocket-ish backend saw of one upgrade request. */
interface SeenUpgrade {
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Bytes the backend received on the tunnel (after the request head). */
  received: () => Buffer;
  /** The backend's socket, to end it from the test. */
  socket: net.Socket;
  ended: Promise<void>;
  closed: Promise<void>;
}

interface EchoBackend {
  address: string;
  upgrades: SeenUpgrade[];
  /** Ordinary (non-upgrade, non-health) requests. */
  plain: { url: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/**
 * A tiny WebSocket-ish server: an upgrade request gets 101 and then every byte it sends is
 * echoed back unparsed; when the client ends its side, the backend ends its own, as a real
 * WebSocket server does. `/refuse` gets an ordinary 200 instead of switching.
 */
async function startEchoBackend(): Promise<EchoBackend> {
  const upgrades: SeenUpgrade[] = [];
  const plain: EchoBackend['plain'] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    if (req.url !== '/health') plain.push({ url: req.url ?? '', headers: req.headers });
    res.end('ok');
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    let received = Buffer.from(head);
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    const closed = new Promise<void>((resolve) => socket.once('close', resolve));
    upgrades.push({ url: req.url ?? '', headers: req.headers, received: () => received, socket, ended, closed });
    socket.on('error', () => undefined);
    if (req.url === '/refuse') {
      // Answers like a server that does not speak the protocol, and keeps the connection.
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nno websocket');
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\n\r\n`);
    if (head.length) socket.write(head);
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      socket.write(d);
    });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    upgrades,
    plain,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A client connection that reads everything the proxy sends into one growing buffer. */
interface Client {
  sock: net.Socket;
  got: () => Buffer;
  closed: Promise<void>;
  isClosed: () => boolean;
  /** The response head, once its blank line arrived. */
  head: () => Promise<string>;
  /** Waits until `n` bytes arrived after the response head and returns them. */
  bodyBytes: (n: number) => Promise<Buffer>;
}

function connect(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let isClosed = false;
    const closed = new Promise<void>((r) => sock.once('close', () => { isClosed = true; r(); }));
    sock.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    sock.on('error', () => undefined);
    const headEnd = (): number => got.indexOf('\r\n\r\n');
    const client: Client = {
      sock,
      got: () => got,
      closed,
      isClosed: () => isClosed,
      head: async () => {
        await pollUntil('a response head', async () => headEnd() >= 0 || isClosed, 10_000);
        if (headEnd() < 0) throw new Error(`closed without a response; got: ${got.toString('latin1')}`);
        return got.subarray(0, headEnd() + 4).toString('latin1');
      },
      bodyBytes: async (n: number) => {
        const after = (): Buffer => got.subarray(headEnd() + 4);
        await pollUntil(`${n} tunnel bytes`, async () => (headEnd() >= 0 && after().length >= n) || isClosed, 10_000);
        if (after().length < n) throw new Error(`closed after ${after().length} of ${n} bytes`);
        return after().subarray(0, n);
      },
    };
    sock.once('connect', () => resolve(client));
    sock.once('error', reject);
  });
}

/** Waits for `p` at most `ms`, failing with `what` (the timer is cleared either way). */
async function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const upgradeRequest = (path: string, token: string | null = CLIENT_TOKEN): string =>
  `GET ${path} HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
  `Keep-Alive: timeout=5\r\n${token === null ? '' : `X-Auth-Token: ${token}\r\n`}\r\n`;

const statusOf = (head: string): number => Number(head.split(' ')[1]);
const header = (head: string, name: string): string | undefined =>
  head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))?.slice(name.length + 1).trim();

/** Opens a tunnel through the proxy and returns the client once the 101 head arrived. */
async function openTunnel(proxy: RunningProxy, path = '/ws'): Promise<{ client: Client; head: string }> {
  const client = await connect(proxy.port);
  client.sock.write(upgradeRequest(path));
  const head = await client.head();
  expect(statusOf(head)).toBe(101);
  return { client, head };
}

/** The proxy holds no client connection and its backend no request (no leaked tunnel). */
async function expectNothingOpen(proxy: RunningProxy): Promise<void> {
  await pollUntil('no open connection and nothing in flight', async () => {
    const s = await proxy.stats();
    return s.connections.active === 0 && s.backends[0]!.in_flight === 0 && s.requests.in_flight === 0;
  }, 10_000);
}

describe('proxy: HTTP/1.1 Upgrade (WebSocket) tunnels', () => {
  let backend: EchoBackend | undefined;
  let proxy: RunningProxy | undefined;
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    await backend?.close();
    backend = undefined;
  });

  async function start(args: string[] = []): Promise<{ backend: EchoBackend; proxy: RunningProxy }> {
    backend = await startEchoBackend();
    proxy = await startProxy({ backends: [{ name: 'ws', address: backend.address }], algorithm: 'least-conn', args });
    return { backend, proxy };
  }

  it('forwards Upgrade without the token and echoes messages both ways, as one in-flight request', async () => {
    const { backend, proxy } = await start();
    const before = await proxy.stats();
    const client = await connect(proxy.port);
    // Bytes right after the head (before the 101) belong to the tunnel and must not be lost.
    client.sock.write(upgradeRequest('/ws?room=1') + 'early');
    const head = await client.head();
    expect(statusOf(head)).toBe(101);
    expect(header(head, 'upgrade')).toBe('websocket');
    expect(header(head, 'connection')?.toLowerCase()).toBe('upgrade');

    expect(backend.upgrades).toHaveLength(1);
    const seen = backend.upgrades[0]!;
    expect(seen.url).toBe('/ws?room=1');
    expect(seen.headers.upgrade).toBe('websocket');
    expect(seen.headers.connection?.toLowerCase()).toBe('upgrade');
    expect(seen.headers['sec-websocket-version']).toBe('13');
    expect(seen.headers['x-auth-token']).toBeUndefined();
    expect(seen.headers['keep-alive']).toBeUndefined();
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(JSON.stringify(seen.headers)).not.toContain(CLIENT_TOKEN);

    // Several messages, text and binary, one larger than the proxy's buffers (backpressure).
    const messages = [Buffer.from('hello'), randomBytes(1000), Buffer.from('third\r\n\r\nmessage'), randomBytes(300_000)];
    let expected = Buffer.from('early');
    for (const m of messages) {
      client.sock.write(m);
      expected = Buffer.concat([expected, m]);
      expect((await client.bodyBytes(expected.length)).equals(expected)).toBe(true);
    }
    expect(seen.received().equals(expected)).toBe(true);

    const during = await proxy.stats();
    expect(during.connections.active).toBe(1);
    expect(during.requests.in_flight).toBe(1);
    expect(during.backends[0]!.in_flight).toBe(1);
    expect(during.backends[0]!.active_connections).toBe(1);

    client.sock.end();
    await within(client.closed, 'client not closed');
    await expectNothingOpen(proxy);
    const after = await proxy.stats();
    expect(after.requests.by_class['1xx'] - before.requests.by_class['1xx']).toBe(1);
    expect(after.requests.total - before.requests.total).toBe(1);
    expect(after.backends[0]!.idle_connections).toBe(0); // a tunnel's connection is never pooled
  });

  it('answers 401 to an upgrade request without a valid token and forwards nothing', async () => {
    const { backend, proxy } = await start();
    for (const token of ['wrong-token', null]) {
      const client = await connect(proxy.port);
      client.sock.write(upgradeRequest('/ws', token));
      const head = await client.head();
      expect(statusOf(head)).toBe(401);
      // Bytes after an upgrade request may be the hoped-for protocol: nothing more is parsed.
      expect(header(head, 'connection')?.toLowerCase()).toBe('close');
      await within(client.closed, 'client not closed');
    }
    const s = await proxy.stats();
    expect(s.auth.denied.invalid).toBe(1);
    expect(s.auth.denied.missing).toBe(1);
    expect(backend.upgrades).toHaveLength(0);
    expect(backend.plain).toHaveLength(0);
  });

  it('relays a non-101 answer to an upgrade request, then closes the client connection', async () => {
    const { backend, proxy } = await start();
    const client = await connect(proxy.port);
    client.sock.write(upgradeRequest('/refuse'));
    const head = await client.head();
    expect(statusOf(head)).toBe(200);
    expect(header(head, 'connection')?.toLowerCase()).toBe('close');
    expect((await client.bodyBytes(12)).toString()).toBe('no websocket');
    // The proxy ends the connection although the client asked nothing of the sort.
    await pollUntil('the proxy to close the client connection', async () => client.isClosed() || client.sock.readableEnded, 10_000);
    client.sock.destroy();
    expect(backend.upgrades).toHaveLength(1);
    // The backend's connection was handed to its upgrade handler: it must not be pooled.
    await within(backend.upgrades[0]!.ended, 'backend side not closed');
    await expectNothingOpen(proxy);
    expect((await proxy.stats()).backends[0]!.idle_connections).toBe(0);
  });

  it('forwards a request naming Upgrade that cannot switch (a POST with a body) as an ordinary one, without Upgrade', async () => {
    const { backend, proxy } = await start();
    const client = await connect(proxy.port);
    client.sock.write(`POST /form HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 2\r\n` +
      `X-Auth-Token: ${CLIENT_TOKEN}\r\n\r\nhi`);
    const head = await client.head();
    expect(statusOf(head)).toBe(200);
    expect(await client.bodyBytes(2)).toEqual(Buffer.from('ok'));
    client.sock.destroy();
    expect(backend.upgrades).toHaveLength(0);
    expect(backend.plain).toHaveLength(1);
    expect(backend.plain[0]!.headers.upgrade).toBeUndefined();
  });

  it('closes the client side when the backend closes the tunnel', async () => {
    const { backend, proxy } = await start();
    const { client } = await openTunnel(proxy);
    client.sock.write('ping');
    expect((await client.bodyBytes(4)).toString()).toBe('ping');
    backend.upgrades[0]!.socket.end('bye');
    await within(client.closed, 'client not closed');
    // What the backend sent before closing arrived first.
    expect(client.got().toString('latin1').endsWith('pingbye')).toBe(true);
    await within(backend.upgrades[0]!.closed, 'backend side not closed');
    await expectNothingOpen(proxy);
    expect((await proxy.stats()).requests.by_class['1xx']).toBe(1);
  });

  it('closes the backend side when the client closes the tunnel', async () => {
    const { backend, proxy } = await start();
    const { client } = await openTunnel(proxy);
    client.sock.end('last words');
    const seen = backend.upgrades[0]!;
    await within(seen.ended, 'backend saw no end');
    // The client's last bytes were delivered before its end.
    expect(seen.received().toString()).toBe('last words');
    await within(seen.closed, 'backend side not closed');
    await within(client.closed, 'client not closed');
    await expectNothingOpen(proxy);
  });

  it('closes a tunnel idle for --stream-timeout-ms, but not one in use', async () => {
    const { backend, proxy } = await start(['--stream-timeout-ms', '1500']);
    const { client } = await openTunnel(proxy);
    let lastDataAt = Date.now();
    client.sock.on('data', () => (lastDataAt = Date.now()));
    // In use for twice the timeout (a message every 250 ms): it stays open.
    for (let i = 0; i < 12; i++) {
      client.sock.write(`m${i}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(client.isClosed()).toBe(false);
    expect(client.got().toString('latin1')).toContain('m11');
    // Then idle: both sides are closed by the proxy, not before the timeout has run.
    await within(client.closed, 'idle tunnel not closed');
    expect(Date.now() - lastDataAt).toBeGreaterThanOrEqual(1000);
    await within(backend.upgrades[0]!.closed, 'backend side not closed');
    await expectNothingOpen(proxy);
    expect((await proxy.stats()).requests.by_class['1xx']).toBe(1);
  });

  it('closes open tunnels at the drain deadline on SIGTERM', async () => {
    const { backend, proxy: p } = await start(['--shutdown-timeout-ms', '500']);
    const { client } = await openTunnel(p);
    const stopping = p.stop();
    proxy = undefined; // stopped here, not in afterEach
    expect(await stopping).toBe(0);
    await within(client.closed, 'client not closed');
    await within(backend.upgrades[0]!.closed, 'backend side not closed');
  });
});
