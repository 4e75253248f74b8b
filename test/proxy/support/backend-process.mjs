// A backend in its own process, so a test can SIGKILL it or freeze it. Usage:
//   node backend-process.mjs NAME PORT   (PORT 0 picks one; the port is printed as "port=N")
// Answers every request with {"name":NAME,"url":...}. A line "freeze" on stdin blocks its
// event loop for good (after printing "frozen"): connections then pile up in the kernel's
// accept queue, unaccepted.
import http from 'node:http';

const [name, port] = process.argv.slice(2);
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ name, url: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen({ port: Number(port), host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(`port=${server.address().port}\n`);
});
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  if (!d.includes('freeze')) return;
  // Written synchronously (stdout is a pipe), so the test sees it before the loop starts.
  process.stdout.write('frozen\n');
  for (;;) { /* never returns: the process is killed by the test */ }
});
