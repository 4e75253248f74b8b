// Child process of the idle-connection check: opens COUNT keep-alive connections to
// 127.0.0.1:PORT, completes one request on each, prints one JSON line, then holds them open
// until its stdin closes or HOLD_MS passes. Runs in its own process so that only it needs the
// raised fd limit. With CA_FILE, over TLS trusting only that certificate (SNI TLS_NAME).
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

const port = Number(process.env.PORT);
const count = Number(process.env.COUNT);
const holdMs = Number(process.env.HOLD_MS ?? 60000);
const BATCH = 200;
const request = `GET / HTTP/1.1\r\nHost: bench\r\nX-Auth-Token: ${process.env.BENCH_TOKEN}\r\n\r\n`;
const ca = process.env.CA_FILE ? readFileSync(process.env.CA_FILE) : undefined;

function openOne() {
  return new Promise((resolve) => {
    const socket = ca
      ? tls.connect({ host: '127.0.0.1', port, ca, servername: process.env.TLS_NAME })
      : net.connect({ host: '127.0.0.1', port });
    let received = '';
    const timer = setTimeout(() => finish(false), 10000);
    const finish = (ok) => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      if (!ok) socket.destroy();
      resolve(ok ? socket : undefined);
    };
    socket.on('error', () => finish(false));
    socket.once(ca ? 'secureConnect' : 'connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(received.slice(0, end));
      if (length && received.length - end - 4 >= Number(length[1])) finish(received.startsWith('HTTP/1.1 200'));
    });
  });
}

const sockets = [];
let failed = 0;
for (let opened = 0; opened < count; opened += BATCH) {
  const batch = await Promise.all(Array.from({ length: Math.min(BATCH, count - opened) }, openOne));
  for (const socket of batch) {
    if (socket) sockets.push(socket);
    else failed++;
  }
}
// Connections the proxy closed while the others were being opened are not "held".
const held = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
process.stdout.write(`${JSON.stringify({ held, failed })}\n`);

const release = () => {
  for (const socket of sockets) socket.destroy();
  process.exit(0);
};
setTimeout(release, holdMs);
process.stdin.on('end', release);
process.stdin.resume();
