import net from 'node:net';

/**
 * A TCP server that answers health checks properly and every other request with exactly the
 * bytes it was told to send: for testing how the proxy treats broken backends. It counts the
 * connections it saw open and close, so a test can see the proxy drop one.
 */
export interface RawBackend {
  address: string;
  port: number;
  /** What to answer; with close, the connection is closed right after (mid-response, even). */
  respondWith(bytes: string, opts?: { close?: boolean }): void;
  /** Non-health requests received. */
  requests(): number;
  /** Connections that carried a non-health request. */
  connections(): number;
  /** Resolves once `n` of those connections have been closed by the proxy. */
  waitClosed(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startRawBackend(): Promise<RawBackend> {
  let response = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
  let opened = 0, closed = 0, requests = 0, closeAfter = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    let got = '';
    let counted = false;
    sock.on('error', () => undefined);
    sock.on('data', (d) => {
      got += d.toString('latin1');
      while (got.includes('\r\n\r\n')) {
        const head = got.slice(0, got.indexOf('\r\n\r\n'));
        got = got.slice(got.indexOf('\r\n\r\n') + 4);
        if (head.startsWith('GET /health ')) {
          sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
          return;
        }
        if (!counted) { counted = true; opened++; }
        requests++;
        if (closeAfter) {
          sock.end(response);
          return;
        }
        sock.write(response);
      }
    });
    sock.on('close', () => { sockets.delete(sock); if (counted) closed++; });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    respondWith: (bytes, opts) => { response = bytes; closeAfter = opts?.close ?? false; },
    requests: () => requests,
    connections: () => opened,
    waitClosed: async (n, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (closed < n) {
        if (Date.now() > deadline) throw new Error(`only ${closed} of ${n} upstream connections were closed`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
