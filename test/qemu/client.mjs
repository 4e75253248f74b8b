// Runs inside a test's network namespace (`ip netns exec <ns> node client.mjs ...`), where the
// test process itself cannot reach: sends `count` GETs and prints, as JSON, how many got each
// status and which backend answered (the default backend names itself in <title>).
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

// With `untilFile`, it stops early once that file exists (the test's "enough" signal). With
// `clients`, that many keep-alive connections send one request after another, and all stop
// after `maxMs` whatever happens.
const [url, token, countText, timeoutText = '5000', untilFile = '', clientsText = '1', maxMsText = '240000'] = process.argv.slice(2);
const count = Number(countText);
const timeout = Number(timeoutText);
const clients = Number(clientsText);
const deadline = Date.now() + Number(maxMsText);
// An https URL is checked against the CA in UPROXY_TEST_CA (the fleet's project CA).
const secure = url.startsWith('https:');
const { Agent, request } = secure ? https : http;
const agent = new Agent({ keepAlive: true, maxSockets: clients, ...(secure ? { ca: readFileSync(process.env.UPROXY_TEST_CA) } : {}) });
const statuses = {};
const backends = {};
const errors = [];

function get() {
  return new Promise((resolve) => {
    const req = request(url, { headers: token ? { 'x-auth-token': token } : {}, timeout, agent }, (res) => {
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

let sent = 0;
async function client() {
  while (sent < count && Date.now() < deadline && !(untilFile && existsSync(untilFile))) {
    sent++;
    const result = await get();
    if (result.error) {
      errors.push(result.error);
      // A refused connection fails at once: pause, so a proxy that is away is not spun on.
      if (clients > 1) await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    statuses[result.status] = (statuses[result.status] ?? 0) + 1;
    const name = /backend-\d+/.exec(result.body)?.[0];
    if (name) backends[name] = (backends[name] ?? 0) + 1;
  }
}
await Promise.all(Array.from({ length: clients }, client));
agent.destroy();
process.stdout.write(JSON.stringify({ statuses, backends, errors }));
