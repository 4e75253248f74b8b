import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadSha256, startBackend, type TestBackend } from './support/backend.js';
import { pollUntil } from './support/load.js';
import { request } from 'undici';
import { ADMIN_TOKEN, CLIENT_TOKEN, freePort, rawExchange, runProxyRaw, splitResponses, startProxy, type RunningProxy } from './support/proxy.js';

/*
 * The proxy's TLS listener against real clients (Node's https and tls, openssl s_client, curl)
 * with certificates the test makes with the openssl command: a CA, a leaf for localhost and
 * 127.0.0.1 (ECDSA P-256), and one for other.test (RSA), each handed to the proxy as one PEM
 * file (chain and key, mode 0600).
 */

let dir: string;
const file = (name: string): string => path.join(dir, name);
const openssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: 'pipe' }); };

function issue(name: string, key: string[], san: string): void {
  openssl('req', '-new', '-newkey', ...key, '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${name}`);
  writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-days', '2', '-out', file(`${name}.crt`), '-extfile', file(`${name}.ext`));
  writeFileSync(file(`${name}.pem`), readFileSync(file(`${name}.crt`), 'utf8') + readFileSync(file(`${name}.key`), 'utf8'), { mode: 0o600 });
  chmodSync(file(`${name}.key`), 0o600);
}

function makeCertificates(): void {
  dir = mkdtempSync(path.join(tmpdir(), 'uproxy-tls-'));
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('ca.key'),
    '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=uproxy test CA');
  issue('localhost', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'DNS:localhost,IP:127.0.0.1');
  issue('other.test', ['rsa:2048'], 'DNS:other.test');
}

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer; reused: boolean }

function get(port: number, target: string, opts: { token?: string; servername?: string; agent?: https.Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path: target, ca: readFileSync(file('ca.pem')), servername: opts.servername ?? 'localhost',
      headers: opts.token ? { 'x-auth-token': opts.token } : {}, agent: opts.agent ?? false,
    }, (res) => {
      const chunks: Buffer[] = [];
      const reused = (res.socket as tls.TLSSocket).isSessionReused();
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), reused }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

/** Raw bytes over one TLS connection; resolves with all that came back once `until` holds or the proxy closes. */
function tlsExchange(port: number, data: string, until: (got: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(file('ca.pem')) }, () => sock.write(data));
    let got = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`timed out; got: ${got}`)); }, 10_000);
    const done = (): void => { clearTimeout(timer); sock.destroy(); resolve(got); };
    sock.on('data', (d: Buffer) => { got += d.toString('latin1'); if (until(got)) done(); });
    sock.on('end', done);
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** The `tls` part of the proxy's /stats. */
async function tlsStats(proxy: RunningProxy): Promise<{ enabled: boolean; handshakes: number; resumed: number; failed: number; in_progress: number }> {
  const res = await request(`${proxy.adminUrl}/stats`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return ((await res.body.json()) as { tls: { enabled: boolean; handshakes: number; resumed: number; failed: number; in_progress: number } }).tls;
}

/** openssl s_client's report of a handshake (no request is sent). */
function sClient(port: number, ...args: string[]): string {
  const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', file('ca.pem'), ...args],
    { input: '', encoding: 'utf8', timeout: 10_000 });
  return `${r.stdout}\n${r.stderr}`;
}

beforeAll(makeCertificates);
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

describe('proxy: TLS on the client listener', () => {
  let backend: TestBackend;
  let proxy: RunningProxy;

  beforeAll(async () => {
    backend = await startBackend('secure');
    proxy = await startProxy({ backends: [{ name: 'secure', address: backend.address }],
      args: ['--tls-cert', file('localhost.pem'), '--tls-cert', file('other.test.pem'), '--header-timeout-ms', '1000'] });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
  });

  it('serves an authenticated request over HTTPS: token stripped, X-Forwarded-Proto https', async () => {
    const res = await get(proxy.port, '/hello', { token: CLIENT_TOKEN });
    expect(res.status).toBe(200);
    const echo = JSON.parse(res.body.toString()) as { headers: Record<string, string> };
    expect(echo.headers['x-forwarded-proto']).toBe('https');
    expect(echo.headers['x-auth-token']).toBeUndefined();
    expect((await get(proxy.port, '/hello')).status).toBe(401);
    expect((await get(proxy.port, '/hello', { token: 'wrong' })).status).toBe(401);
  });

  it('works with curl, the token read from a file rather than its command line', async () => {
    writeFileSync(file('token-header'), `X-Auth-Token: ${CLIENT_TOKEN}`, { mode: 0o600 });
    // Asynchronously: the backend answers from this very process.
    const { stdout } = await promisify(execFile)('curl', ['-s', '-m', '10', '--cacert', file('ca.pem'), '-H', `@${file('token-header')}`,
      '-w', '\n%{http_code} %{http_version} %{ssl_verify_result}', `https://localhost:${proxy.port}/curl`], { encoding: 'utf8' });
    expect(stdout.trim().split('\n').at(-1)).toBe('200 1.1 0');
  });

  it('keeps a connection alive across requests and streams large bodies both ways', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 20; i++) expect((await get(proxy.port, `/ka/${i}`, { token: CLIENT_TOKEN, agent })).status).toBe(200);
      const bytes = 5 * 1024 * 1024;
      const down = await get(proxy.port, `/download?bytes=${bytes}`, { token: CLIENT_TOKEN, agent });
      expect(createHash('sha256').update(down.body).digest('hex')).toBe(downloadSha256(bytes));
    } finally {
      agent.destroy();
    }
    const upload = Buffer.alloc(3 * 1024 * 1024, 7);
    const echo = await new Promise<{ bodyBytes: number; bodySha256: string }>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: proxy.port, path: '/upload', method: 'POST', servername: 'localhost',
        ca: readFileSync(file('ca.pem')), headers: { 'x-auth-token': CLIENT_TOKEN }, agent: false }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(JSON.parse(text) as { bodyBytes: number; bodySha256: string }));
      });
      req.on('error', reject);
      req.end(upload);
    });
    expect(echo).toMatchObject({ bodyBytes: upload.length, bodySha256: createHash('sha256').update(upload).digest('hex') });
  });

  it('applies the hostile-input rules over TLS', async () => {
    const before = backend.seen.length;
    const got = await tlsExchange(proxy.port,
      `POST /x HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, (g) => g.endsWith('}'));
    expect(got).toMatch(/^HTTP\/1\.1 400 /);
    expect(splitResponses(got)).toHaveLength(1);
    expect(backend.seen.length).toBe(before);
  });

  it('chooses the certificate by SNI, the first one for a name none covers', () => {
    expect(sClient(proxy.port, '-servername', 'other.test')).toMatch(/subject=CN ?= ?other\.test/);
    expect(sClient(proxy.port, '-servername', 'localhost')).toMatch(/subject=CN ?= ?localhost/);
    expect(sClient(proxy.port, '-servername', 'unknown.test')).toMatch(/subject=CN ?= ?localhost/);
  });

  it('speaks TLS 1.2 and 1.3 only, negotiates http/1.1 by ALPN, X25519 first', () => {
    expect(sClient(proxy.port, '-servername', 'localhost', '-tls1_3')).toMatch(/New, TLSv1\.3, Cipher is TLS_AES_128_GCM_SHA256/);
    expect(sClient(proxy.port, '-servername', 'localhost', '-tls1_2')).toMatch(/New, TLSv1\.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/);
    expect(sClient(proxy.port, '-servername', 'localhost', '-tls1_1')).toMatch(/New, \(NONE\), Cipher is \(NONE\)/);
    expect(sClient(proxy.port, '-servername', 'localhost', '-alpn', 'h2,http/1.1')).toMatch(/ALPN protocol: http\/1\.1/);
    expect(sClient(proxy.port, '-servername', 'localhost')).toMatch(/Server Temp Key: X25519/);
  });

  it('resumes sessions', async () => {
    const agent = new https.Agent({ keepAlive: false, maxCachedSessions: 10 });
    try {
      const first = await get(proxy.port, '/r1', { token: CLIENT_TOKEN, agent });
      const second = await get(proxy.port, '/r2', { token: CLIENT_TOKEN, agent });
      expect(first.reused).toBe(false);
      expect(second.reused).toBe(true);
    } finally {
      agent.destroy();
    }
    expect((await tlsStats(proxy)).resumed).toBeGreaterThan(0);
    const metrics = await (await request(`${proxy.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).body.text();
    expect(metrics).toMatch(/^uproxy_tls_resumed_total [1-9]\d*$/m);
    const expiry = Number(/^uproxy_tls_certificate_expiry_seconds\{index="0"\} (\d+)$/m.exec(metrics)?.[1]);
    // The test's certificates are valid for 2 days.
    expect(expiry * 1000 - Date.now()).toBeGreaterThan(86_400_000);
  });

  it('refuses a client-initiated renegotiation and keeps counting handshakes right', async () => {
    const before = await tlsStats(proxy);
    // s_client's R command asks for a TLS 1.2 renegotiation.
    const r = spawnSync('sh', ['-c', `(sleep 0.5; echo R; sleep 0.5) | openssl s_client -connect 127.0.0.1:${proxy.port} -servername localhost -tls1_2 -CAfile ${file('ca.pem')}`],
      { encoding: 'utf8', timeout: 10_000 });
    expect(`${r.stdout}${r.stderr}`).toMatch(/RENEGOTIATING/);
    const after = await tlsStats(proxy);
    expect(after.in_progress).toBe(0);
    expect(after.handshakes).toBe(before.handshakes + 1);
    expect((await get(proxy.port, '/after-renegotiation', { token: CLIENT_TOKEN })).status).toBe(200);
  });

  it('closes plain HTTP sent to the TLS port and forwards nothing', async () => {
    const before = backend.seen.length;
    const got = await new Promise<string>((resolve) => {
      const sock = net.connect(proxy.port, '127.0.0.1', () => sock.write(`GET / HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`));
      let data = '';
      sock.on('data', (d) => (data += d.toString('latin1')));
      sock.on('close', () => resolve(data));
      sock.on('error', () => undefined);
    });
    expect(got).not.toMatch(/HTTP\/1\.1 200/);
    expect(backend.seen.length).toBe(before);
  });

  it('ends a handshake a client stops halfway through, at the header timeout', async () => {
    const started = Date.now();
    await new Promise<void>((resolve) => {
      const sock = net.connect(proxy.port, '127.0.0.1', () => sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
      sock.on('close', () => resolve());
      sock.on('error', () => undefined);
    });
    const ms = Date.now() - started;
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(5_000);
    const s = await tlsStats(proxy);
    expect(s.failed).toBeGreaterThan(0);
    expect(s.in_progress).toBe(0);
  });
});

describe('proxy: balancing and an expired certificate over TLS', () => {
  it('spreads requests round-robin over 3 backends and routes around one that is gone, all over HTTPS', async () => {
    const backends = await Promise.all(['b1', 'b2', 'b3'].map((name) => startBackend(name)));
    const proxy = await startProxy({ backends: backends.map((b, i) => ({ name: `b${i + 1}`, address: b.address })), args: ['--tls-cert', file('localhost.pem')] });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      for (let i = 0; i < 30; i++) expect((await get(proxy.port, `/spread/${i}`, { token: CLIENT_TOKEN, agent })).status).toBe(200);
      expect(backends.map((b) => b.seen.length)).toEqual([10, 10, 10]);
      await backends[1]!.close();
      const statuses = [];
      for (let i = 0; i < 30; i++) statuses.push((await get(proxy.port, `/after/${i}`, { token: CLIENT_TOKEN, agent })).status);
      expect(statuses.every((status) => status === 200)).toBe(true);
      expect(backends[1]!.seen.filter((r) => r.url.startsWith('/after/'))).toHaveLength(0);
      expect((await get(proxy.port, '/denied', { agent })).status).toBe(401);
    } finally {
      agent.destroy();
      await proxy.stop();
      await Promise.all([backends[0]!.close(), backends[2]!.close()]);
    }
  });

  it('serves an expired certificate as it was given (its end shows in /stats); clients refuse it', async () => {
    // From a CA made the way `init` makes one, issued 40 days ago for 30 days.
    const { ensureCa, issueProxyCertificate } = await import('../../cli/tls/local-ca.js');
    const project = mkdtempSync(path.join(tmpdir(), 'uproxy-tls-expired-'));
    const { ca } = await ensureCa(project, 'expired');
    writeFileSync(path.join(project, 'expired.pem'), await issueProxyCertificate(ca, ['localhost', '127.0.0.1'], { now: Date.now() - 40 * 86_400_000 }), { mode: 0o600 });
    const backend = await startBackend('late');
    const proxy = await startProxy({ backends: [{ name: 'late', address: backend.address }], args: ['--tls-cert', path.join(project, 'expired.pem')] });
    try {
      const refused = await new Promise<string>((resolve) => {
        const sock = tls.connect({ host: '127.0.0.1', port: proxy.port, servername: 'localhost', ca: readFileSync(path.join(project, '.uproxy/tls/ca.pem')) });
        sock.on('secureConnect', () => { sock.destroy(); resolve('accepted'); });
        sock.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      expect(refused).toBe('CERT_HAS_EXPIRED');
      const curl = spawnSync('curl', ['-sS', '-m', '10', '--cacert', path.join(project, '.uproxy/tls/ca.pem'), `https://localhost:${proxy.port}/`], { encoding: 'utf8' });
      expect(curl.status).toBe(60);
      expect(curl.stderr).toMatch(/expired/);
      const listed = await request(`${proxy.adminUrl}/tls/certificates`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const [first] = (await listed.body.json()) as { not_after: number }[];
      expect(first!.not_after * 1000).toBeLessThan(Date.now() - 9 * 86_400_000);
      expect(backend.seen).toHaveLength(0);
    } finally {
      await proxy.stop();
      await backend.close();
      rmSync(project, { recursive: true, force: true });
    }
  });
});

describe('proxy: TLS under load and for tunnels', () => {
  let backend: TestBackend;

  beforeAll(async () => {
    backend = await startBackend('many');
  });
  afterAll(async () => {
    await backend?.close();
  });

  it('completes 1,000 concurrent handshakes, then serves a request on each connection', async () => {
    const proxy = await startProxy({ backends: [{ name: 'many', address: backend.address }], args: ['--tls-cert', file('localhost.pem')] });
    const sockets: tls.TLSSocket[] = [];
    try {
      const ca = readFileSync(file('ca.pem'));
      await Promise.all(Array.from({ length: 1000 }, () => new Promise<void>((resolve, reject) => {
        const sock = tls.connect({ host: '127.0.0.1', port: proxy.port, servername: 'localhost', ca }, () => resolve());
        sock.on('error', reject);
        sockets.push(sock);
      })));
      expect((await tlsStats(proxy)).handshakes).toBeGreaterThanOrEqual(1000);
      // A loop busy with 1,000 handshakes (slow under the sanitizers) can miss a health check's
      // deadline: the requests wait until the backend is up again.
      await pollUntil('the backend up again', async () => (await proxy.stats()).backends[0]!.state === 'up');
      // The requests go 100 at a time: the one test backend, in this process, is not the subject.
      const statuses: Record<string, number> = {};
      for (let i = 0; i < sockets.length; i += 100) {
        const batch = await Promise.all(sockets.slice(i, i + 100).map((sock, j) => new Promise<string>((resolve) => {
          let got = '';
          sock.on('data', (d: Buffer) => { got += d.toString('latin1'); if (got.endsWith('}')) resolve(got.slice(9, 12)); });
          sock.write(`GET /c/${i + j} HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`);
        })));
        for (const status of batch) statuses[status] = (statuses[status] ?? 0) + 1;
      }
      expect(statuses).toEqual({ 200: 1000 });
      expect((await tlsStats(proxy)).in_progress).toBe(0);
    } finally {
      for (const s of sockets) s.destroy();
      await proxy.stop();
    }
  });

  it('closes connections beyond --max-handshakes at once', async () => {
    const proxy = await startProxy({ backends: [{ name: 'many', address: backend.address }],
      args: ['--tls-cert', file('localhost.pem'), '--max-handshakes', '10', '--header-timeout-ms', '5000'] });
    const sockets: net.Socket[] = [];
    try {
      const closedEarly = await Promise.all(Array.from({ length: 30 }, () => new Promise<boolean>((resolve) => {
        const sock = net.connect(proxy.port, '127.0.0.1');
        sockets.push(sock);
        const timer = setTimeout(() => resolve(false), 1500);
        sock.on('close', () => { clearTimeout(timer); resolve(true); });
        sock.on('error', () => undefined);
      })));
      expect(closedEarly.filter(Boolean).length).toBe(20);
      expect((await tlsStats(proxy)).in_progress).toBe(10);
    } finally {
      for (const s of sockets) s.destroy();
      await proxy.stop();
    }
  });

  it('tunnels a WebSocket-style upgrade over TLS, bytes both ways', async () => {
    const echo = net.createServer((sock) => {
      let head = '';
      sock.on('error', () => undefined);
      sock.on('data', function onData(d: Buffer) {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        if (head.startsWith('GET /health')) {
          sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
          return;
        }
        sock.off('data', onData);
        sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
        sock.pipe(sock);
      });
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const proxy = await startProxy({ backends: [{ name: 'echo', address: `127.0.0.1:${(echo.address() as net.AddressInfo).port}` }],
      args: ['--tls-cert', file('localhost.pem')] });
    try {
      const payload = Buffer.alloc(300_000, 'w').toString('latin1');
      const got = await tlsExchange(proxy.port,
        `GET /ws HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n${payload}`,
        (g) => g.length >= g.indexOf('\r\n\r\n') + 4 + payload.length && g.includes('\r\n\r\n'));
      expect(got).toMatch(/^HTTP\/1\.1 101 /);
      expect(got.slice(got.indexOf('\r\n\r\n') + 4)).toBe(payload);
    } finally {
      await proxy.stop();
      await new Promise<void>((resolve) => echo.close(() => resolve()));
    }
  });
});

describe('proxy: certificates replaced through the admin API', () => {
  it('serves a new certificate to new connections, with no failed request under keep-alive load', async () => {
    const backend = await startBackend('renew');
    const proxy = await startProxy({ backends: [{ name: 'renew', address: backend.address }], args: ['--tls-cert', file('localhost.pem')] });
    const serial = (): Promise<string> => new Promise((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: proxy.port, servername: 'localhost', ca: readFileSync(file('ca.pem')) }, () => {
        resolve(sock.getPeerCertificate().serialNumber);
        sock.destroy();
      });
      sock.on('error', reject);
    });
    const admin = (method: 'GET' | 'PUT', target: string, body?: string) =>
      request(`${proxy.adminUrl}${target}`, { method, body, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
        .then(async (r) => ({ status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> }));
    const agents = [1, 2, 3].map(() => new https.Agent({ keepAlive: true, maxSockets: 1 }));
    let stop = false;
    const failures: string[] = [];
    let served = 0;
    const loops = agents.map(async (agent, i) => {
      for (let n = 0; !stop && n < 5000; n++) {
        const res = await get(proxy.port, `/load/${i}/${n}`, { token: CLIENT_TOKEN, agent }).catch((e: Error) => ({ status: 0, error: e.message }));
        if (res.status === 200) served++;
        else failures.push(String(res.status));
      }
    });
    try {
      const before = await serial();
      const listed = await admin('GET', '/tls/certificates');
      expect(listed.json).toEqual([{ index: 0, names: ['localhost', '127.0.0.1'], not_after: expect.any(Number), issuer: 'uproxy test CA', serial: expect.stringMatching(/^[0-9A-F]+$/) }]);
      issue('localhost', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'DNS:localhost,IP:127.0.0.1');
      while (served < 50) await new Promise((r) => setTimeout(r, 10));
      const replaced = await admin('PUT', '/tls/certificates/0', readFileSync(file('localhost.pem'), 'utf8'));
      expect(replaced.status).toBe(200);
      const mark = served;
      while (served < mark + 50) await new Promise((r) => setTimeout(r, 10));
      expect(await serial()).not.toBe(before);
      // A body that is no certificate is refused with the reason, and never quoted back.
      const bad = await admin('PUT', '/tls/certificates/0', 'secret-looking-text');
      expect(bad.status).toBe(400);
      expect(String(bad.json.error)).toMatch(/must hold a PEM certificate chain/);
      expect(JSON.stringify(bad.json)).not.toContain('secret-looking-text');
      expect(await serial()).not.toBe(before);
    } finally {
      stop = true;
      await Promise.all(loops);
      for (const agent of agents) agent.destroy();
      await proxy.stop();
      await backend.close();
    }
    expect(failures).toEqual([]);
    expect(proxy.output()).not.toContain('PRIVATE KEY');
  });
});

describe('proxy: a renewed chain for the key the proxy already has', () => {
  it('keeps the current key when the body holds no key, and refuses a chain for another key', async () => {
    const backend = await startBackend('keep');
    const proxy = await startProxy({ backends: [{ name: 'keep', address: backend.address }], args: ['--tls-cert', file('localhost.pem')] });
    const admin = (body: string) =>
      request(`${proxy.adminUrl}/tls/certificates/0`, { method: 'PUT', body, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
        .then(async (r) => ({ status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> }));
    const served = (): Promise<string> => new Promise((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: proxy.port, servername: 'localhost', ca: readFileSync(file('ca.pem')) }, () => {
        resolve(sock.getPeerCertificate().serialNumber);
        sock.destroy();
      });
      sock.on('error', reject);
    });
    try {
      const before = await served();
      // A new certificate for the same key, as `up` renews a VM guest's: only public bytes are sent.
      openssl('req', '-new', '-key', file('localhost.key'), '-out', file('same-key.csr'), '-subj', '/CN=localhost');
      openssl('x509', '-req', '-in', file('same-key.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
        '-days', '2', '-out', file('same-key.crt'), '-extfile', file('localhost.ext'));
      const renewed = readFileSync(file('same-key.crt'), 'utf8');
      expect(renewed).not.toContain('PRIVATE KEY');
      expect((await admin(renewed)).status).toBe(200);
      const after = await served();
      expect(after).not.toBe(before);
      expect((await get(proxy.port, '/', { token: CLIENT_TOKEN })).status).toBe(200);
      // A chain for some other key cannot be paired with the current one: refused, the old one serves on.
      const other = readFileSync(file('other.test.crt'), 'utf8');
      const refused = await admin(other);
      expect(refused.status).toBe(400);
      expect(String(refused.json.error)).toMatch(/without a key: one for the current key/);
      expect(await served()).toBe(after);
    } finally {
      await proxy.stop();
      await backend.close();
    }
  });
});

describe('proxy: the plain listener that redirects to HTTPS', () => {
  it('answers 308 to the same target on https://, forwards nothing, and 400 without a Host', async () => {
    const backend = await startBackend('r');
    const plain = await freePort();
    const proxy = await startProxy({ backends: [{ name: 'r', address: backend.address }],
      args: ['--tls-cert', file('localhost.pem'), '--redirect-listen', `127.0.0.1:${plain}`] });
    try {
      const got = await rawExchange(plain, `GET /a/b?c=1 HTTP/1.1\r\nHost: localhost:${plain}\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n`);
      expect(got).toMatch(/^HTTP\/1\.1 308 Permanent Redirect\r\n/);
      expect(got).toContain(`Location: https://localhost:${proxy.port}/a/b?c=1\r\n`);
      expect(await rawExchange(plain, 'GET / HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
      expect(await rawExchange(plain, 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
      // HTTP/0.9 has no version after its target: nothing of the next lines may become the Location.
      expect(await rawExchange(plain, 'GET /ws\r\nHost:t \r\ngh: \r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
      expect(backend.seen).toHaveLength(0);
      // curl follows it to the TLS listener.
      writeFileSync(file('token-header'), `X-Auth-Token: ${CLIENT_TOKEN}`, { mode: 0o600 });
      const { stdout } = await promisify(execFile)('curl', ['-s', '-L', '-m', '10', '--cacert', file('ca.pem'), '-H', `@${file('token-header')}`,
        '-w', '\n%{http_code} %{num_redirects}', `http://localhost:${plain}/followed`], { encoding: 'utf8' });
      expect(stdout.trim().split('\n').at(-1)).toBe('200 1');
      expect(backend.seen.map((r) => r.url)).toEqual(['/followed']);
    } finally {
      await proxy.stop();
      await backend.close();
    }
  });
});

describe('proxy: TLS configuration errors', () => {
  it('refuses --redirect-listen without --tls-cert', async () => {
    const r = await runProxyRaw(['--listen', '127.0.0.1:1', '--backend', 'a=127.0.0.1:2', '--token', `t:${'0'.repeat(64)}`, '--redirect-listen', '127.0.0.1:3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--redirect-listen: .*--tls-cert/);
  });

  it('exits 2 with one line naming a --tls-cert file that holds no certificate and key', async () => {
    const bad = path.join(mkdtempSync(path.join(tmpdir(), 'uproxy-tls-bad-')), 'bad.pem');
    writeFileSync(bad, 'not a certificate\n', { mode: 0o600 });
    const r = await runProxyRaw(['--listen', '127.0.0.1:1', '--backend', 'a=127.0.0.1:2', '--token', `t:${'0'.repeat(64)}`, '--tls-cert', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--tls-cert: '.*bad\.pem' must hold a PEM certificate chain/);
    rmSync(path.dirname(bad), { recursive: true, force: true });
  });
});
