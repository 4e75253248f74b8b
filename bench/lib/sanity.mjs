// Before a target is measured, prove it does the job the bench assumes: forwards with a valid
// token, answers 401 without one or with a wrong one, strips the token, and spreads requests
// over all three backends; over TLS also that it serves the run's certificate with TLS 1.3 and
// X25519. A fast proxy that does a different job would be a false result.
// The floor relay is checked for 401/200 only (see FORWARDS_AS_IS).
import http from 'node:http';
import https from 'node:https';
import { sleep } from './processes.mjs';
import { TLS_NAME } from './tls.mjs';

// The floor relay (bench/floor) is a yardstick, not a proxy: it passes requests on byte for byte
// (so the backend does see the token) and balances per client connection, not per request (so
// a keep-alive client stays on one backend). Only its 401/200 behaviour is checked.
const FORWARDS_AS_IS = new Set(['floor']);

// With `tls` (the run's certificate), over HTTPS trusting only that certificate; the answer
// then also tells what the handshake agreed on.
export function httpGet(port, path, headers = {}, timeoutMs = 3000, tls = undefined) {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, path, headers, agent: false, timeout: timeoutMs };
    const get = tls ? (cb) => https.get({ ...options, ca: tls.certPem, servername: TLS_NAME }, cb) : (cb) => http.get(options, cb);
    const req = get((res) => {
      const handshake = tls
        ? { protocol: res.socket.getProtocol(), group: res.socket.getEphemeralKeyInfo()?.name, fingerprint: res.socket.getPeerCertificate().fingerprint256 }
        : undefined;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body, handshake }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from 127.0.0.1:${port}${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

// uproxy marks backends up only after their first health check: poll instead of sleeping.
export async function waitUntilForwarding(target, token, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (target.proc?.exited) throw new Error(`${target.name} exited (code ${target.proc.exitCode}); see ${target.logFile}`);
    try {
      const res = await httpGet(target.port, '/', { 'X-Auth-Token': token }, 3000, target.tls);
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = err.message;
    }
    await sleep(100);
  }
  throw new Error(`${target.name} did not forward a valid request within ${timeoutMs} ms (last: ${last})`);
}

// Returns a list of problems; empty when the target does the bench's job.
export async function checkSameJob(target, token) {
  const problems = [];
  const expect = async (what, headers, path, check) => {
    try {
      const res = await httpGet(target.port, path, headers, 3000, target.tls);
      const problem = check(res);
      if (problem) problems.push(`${what}: ${problem}`);
    } catch (err) {
      problems.push(`${what}: ${err.message}`);
    }
  };
  const statusIs = (want) => (res) => (res.status === want ? undefined : `got status ${res.status}, want ${want}`);
  if (target.tls) {
    await expect('TLS', { 'X-Auth-Token': token }, '/', ({ handshake: h }) => {
      if (h.protocol !== 'TLSv1.3') return `negotiated ${h.protocol}, want TLSv1.3`;
      if (h.group !== 'X25519') return `key exchange ${h.group}, want X25519`;
      return h.fingerprint === target.tls.fingerprint ? undefined : "served a certificate other than the run's";
    });
  }
  await expect('missing token', {}, '/', statusIs(401));
  await expect('wrong token', { 'X-Auth-Token': `${token}x` }, '/', statusIs(401));
  if (!FORWARDS_AS_IS.has(target.name)) {
    await expect('token forwarded', { 'X-Auth-Token': token }, '/echo-token', (res) =>
      res.status !== 200 ? `got status ${res.status}` : res.body !== '' ? 'the backend received the client token' : undefined,
    );
  }
  const seen = new Set();
  for (let i = 0; i < 6; i++) {
    await expect('valid token', { 'X-Auth-Token': token }, '/', (res) => {
      if (res.status !== 200) return `got status ${res.status}`;
      seen.add(res.body);
      return undefined;
    });
  }
  if (target.name !== 'direct' && !FORWARDS_AS_IS.has(target.name) && seen.size !== 3) {
    problems.push(`round-robin: 6 requests reached ${seen.size} distinct backend(s), want 3`);
  }
  return problems;
}
