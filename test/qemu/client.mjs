// Runs inside a test's network namespace (`ip netns exec <ns> node client.mjs ...`), where the
// test process itself cannot reach: sends `count` sequential GETs and prints, as JSON, how
// many got each status and which backend answered (the default backend names itself in <title>).
import { existsSync } from 'node:fs';
import { request } from 'node:http';

// With `untilFile`, it stops early once that file exists (the test's "enough" signal).
const [url, token, countText, timeoutText = '5000', untilFile] = process.argv.slice(2);
const count = Number(countText);
const timeout = Number(timeoutText);
const statuses = {};
const backends = {};
const errors = [];

function get() {
  return new Promise((resolve) => {
    const req = request(url, { headers: token ? { 'x-auth-token': token } : {}, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ error: error.message }));
    req.end();
  });
}

for (let i = 0; i < count && !(untilFile && existsSync(untilFile)); i++) {
  const result = await get();
  if (result.error) {
    errors.push(result.error);
    continue;
  }
  statuses[result.status] = (statuses[result.status] ?? 0) + 1;
  const name = /backend-\d+/.exec(result.body)?.[0];
  if (name) backends[name] = (backends[name] ?? 0) + 1;
}
process.stdout.write(JSON.stringify({ statuses, backends, errors }));
