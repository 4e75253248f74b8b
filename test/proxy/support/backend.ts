import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What a test backend saw for one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  socketId: number;
}

export interface TestBackend {
  name: string;
  port: number;
  address: string;
  /** Requests other than health checks, in arrival order. */
  seen: SeenRequest[];
  /** Distinct client sockets that carried non-health requests. */
  socketsUsed(): number;
  /** TCP connections open to it now (health checks included). */
  openConnections(): Promise<number>;
  close(): Promise<void>;
}

/** Deterministic bytes for streaming tests: the same (seed, size) always gives the same data. */
export function patternChunk(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export const DOWNLOAD_CHUNK = 64 * 1024;

/** sha256 of what GET /download?bytes=N streams. */
export function downloadSha256(bytes: number): string {
  const h = createHash('sha256');
  for (let sent = 0, i = 0; sent < bytes; i++) {
    const n = Math.min(DOWNLOAD_CHUNK, bytes - sent);
    h.update(patternChunk(i + 1, n));
    sent += n;
  }
  return h.digest('hex');
}

/**
 * A small Node HTTP server that names itself and echoes what it received as JSON: method,
 * url, headers, body size and sha256. Special paths:
 *   /slow?ms=N       answers after N ms
 *   /download?bytes=N streams N deterministic bytes with chunked encoding
 *   /health          the proxy's health check (not recorded in `seen`)
 */
export async function startBackend(name: string): Promise<TestBackend> {
  const seen: SeenRequest[] = [];
  const socketIds = new WeakMap<Socket, number>();
  let nextSocket = 1;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/health') {
      res.end('ok');
      return;
    }
    const socket = req.socket;
    if (!socketIds.has(socket)) socketIds.set(socket, nextSocket++);
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, socketId: socketIds.get(socket)! });
    if (url.pathname === '/download') {
      const total = Number(url.searchParams.get('bytes'));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-backend': name });
      let sent = 0, i = 0;
      const pump = (): void => {
        while (sent < total) {
          const n = Math.min(DOWNLOAD_CHUNK, total - sent);
          sent += n;
          if (!res.write(patternChunk(++i, n))) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    const hash = createHash('sha256');
    let bodyBytes = 0;
    req.on('data', (d: Buffer) => { bodyBytes += d.length; hash.update(d); });
    req.on('end', () => {
      const reply = (): void => {
        const body = JSON.stringify({ name, method: req.method, url: req.url, headers: req.headers,
          httpVersion: req.httpVersion, bodyBytes, bodySha256: hash.digest('hex'), trailers: req.trailers });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-backend': name });
        res.end(body);
      };
      const delay = url.pathname === '/slow' ? Number(url.searchParams.get('ms') ?? '1000') : 0;
      if (delay > 0) setTimeout(reply, delay); else reply();
    });
  });
  // Longer than the proxy's pooled-connection lifetime, so the proxy closes idle ones first.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    address: `127.0.0.1:${port}`,
    seen,
    socketsUsed: () => new Set(seen.map((s) => s.socketId)).size,
    openConnections: () => new Promise<number>((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n)))),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
