import net from 'node:net';

/**
 * A keep-alive backend that frames requests by Content-Length alone and knows nothing of
 * Transfer-Encoding, as the default backend template did before the audit of issue 12: the
 * kind of weak backend a proxy must not let one client use to desynchronise another's
 * responses. `GET /` answers 200 "page", any other path 404.
 */
export interface NaiveBackend {
  address: string;
  close(): Promise<void>;
}

export async function startNaiveBackend(): Promise<NaiveBackend> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    let got = Buffer.alloc(0);
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
    sock.on('data', (d) => {
      got = Buffer.concat([got, d]);
      for (;;) {
        const end = got.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = got.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? '0');
        if (got.length < end + 4 + length) return;
        got = got.subarray(end + 4 + length);
        const target = head.split(' ')[1] ?? '';
        const body = target === '/' || target === '/health' ? 'page' : 'nope';
        const status = body === 'page' ? '200 OK' : '404 Not Found';
        const reply = `HTTP/1.1 ${status}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
        if (/\r\nconnection:\s*close/i.test(head)) {
          sock.end(reply);
          return;
        }
        sock.write(reply);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
