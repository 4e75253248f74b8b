import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import acme from 'acme-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { ADMIN_TOKEN, CLIENT_TOKEN, freePort, rawExchange, splitResponses, startProxy, type RunningProxy } from './support/proxy.js';

/*
 * The ACME challenges the proxy answers for the CLI's ACME client (issue 17), against a real
 * proxy over real sockets: http-01 on the plain listener (--redirect-listen), tls-alpn-01
 * (RFC 8737) on the TLS listener, both registered through the admin API. The proxy serves two
 * certificates (localhost, other.test) so SNI selection is checked while challenges exist.
 */

let dir: string;
const file = (name: string): string => path.join(dir, name);
const openssl = (...args: string[]): string => execFileSync('openssl', args, { stdio: 'pipe', encoding: 'utf8' });
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

function issue(name: string, san: string): void {
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file(`${name}.key`),
    '-out', file(`${name}.csr`), '-subj', `/CN=${name}`);
  writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-days', '2', '-out', file(`${name}.crt`), '-extfile', file(`${name}.ext`));
  writeFileSync(file(`${name}.pem`), readFileSync(file(`${name}.crt`), 'utf8') + readFileSync(file(`${name}.key`), 'utf8'), { mode: 0o600 });
  chmodSync(file(`${name}.key`), 0o600);
}

let challenges = 0;
/** RFC 8737's certificate for `name` (made with openssl), its key appended; `critical: false` and `san` make wrong ones. */
function challengeCertificate(name: string, keyAuthorization: string, opts: { critical?: boolean; san?: string } = {}): { pem: string; fingerprint: string } {
  const digest = createHash('sha256').update(keyAuthorization).digest('hex').match(/../g)!.join(':');
  const base = file(`challenge-${challenges++}`);
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.crt`,
    '-days', '1', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${opts.san ?? name}`,
    '-addext', `1.3.6.1.5.5.7.1.31=${opts.critical === false ? '' : 'critical,'}DER:04:20:${digest}`);
  const cert = readFileSync(`${base}.crt`, 'utf8');
  return { pem: cert + readFileSync(`${base}.key`, 'utf8'), fingerprint: new X509Certificate(cert).fingerprint256 };
}

async function call(proxy: RunningProxy, method: string, target: string, body?: string, headers: Record<string, string> = admin): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`${proxy.adminUrl}${target}`, { method: method as 'PUT', headers, body });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}

interface Handshake { alpn: string | false; fingerprint?: string; reused: boolean; closedByProxy: boolean; received: string }

/** A TLS handshake as a validator (or any client) makes it; after it, optionally sends `send`, and waits for the proxy to close. */
function handshake(port: number, servername: string, alpn: string[] | undefined, opts: { send?: string; session?: Buffer } = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername, ALPNProtocols: alpn, rejectUnauthorized: false, session: opts.session });
    let received = '', result: Omit<Handshake, 'closedByProxy' | 'received'> | undefined;
    const timer = setTimeout(() => { sock.destroy(); resolve({ ...result!, closedByProxy: false, received }); }, 2000);
    sock.on('secureConnect', () => {
      // A resumed session shows no certificate: no fingerprint.
      result = { alpn: sock.alpnProtocol ?? false, fingerprint: sock.getPeerCertificate().fingerprint256, reused: sock.isSessionReused() };
      if (opts.send) sock.write(opts.send);
    });
    sock.on('data', (d: Buffer) => (received += d.toString('latin1')));
    sock.on('end', () => { clearTimeout(timer); sock.destroy(); resolve({ ...result!, closedByProxy: true, received }); });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** The TLS session a normal client gets for `servername` (TLS 1.3 sends it after the handshake). */
function sessionOf(port: number, servername: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false });
    sock.once('session', (s: Buffer) => { sock.destroy(); resolve(s); });
    sock.on('error', reject);
  });
}

function httpsGet(port: number, servername: string, token?: string): Promise<{ status: number; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/app', servername, ca: readFileSync(file('ca.pem')), agent: false,
      headers: token ? { 'x-auth-token': token } : {} }, (res) => {
      const fingerprint = (res.socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, fingerprint }));
    });
    req.on('error', reject);
    req.end();
  });
}

const fingerprintOf = (name: string): string => new X509Certificate(readFileSync(file(`${name}.crt`))).fingerprint256;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'uproxy-acme-'));
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('ca.key'),
    '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=uproxy test CA');
  issue('localhost', 'DNS:localhost,IP:127.0.0.1');
  issue('other.test', 'DNS:other.test');
});
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

describe('proxy: ACME challenges', () => {
  let backend: TestBackend;
  let proxy: RunningProxy;
  let plain: number;

  beforeAll(async () => {
    backend = await startBackend('acme');
    plain = await freePort();
    proxy = await startProxy({ backends: [{ name: 'acme', address: backend.address }],
      args: ['--tls-cert', file('localhost.pem'), '--tls-cert', file('other.test.pem'), '--redirect-listen', `127.0.0.1:${plain}`] });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
  });

  const fetchChallenge = (target: string, method = 'GET', version = '1.1'): Promise<{ status: number; headers: Record<string, string>; body: string; raw: string }> =>
    rawExchange(plain, `${method} ${target} HTTP/${version}\r\n${version === '1.1' ? 'Host: validator.example\r\n' : ''}\r\n`).then((raw) => ({ ...splitResponses(raw)[0]!, raw }));

  it('http-01: serves a registered key authorization on the plain listener, without a client token, to any Host', async () => {
    const token = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
    const keyAuthorization = `${token}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;
    // The CLI may send it with a line end: trailing white space is not part of it.
    const put = await call(proxy, 'PUT', `/acme/http-01/${token}`, `${keyAuthorization}\r\n`);
    expect(put).toEqual({ status: 201, json: { token, state: 'added' } });
    const got = await fetchChallenge(`/.well-known/acme-challenge/${token}`);
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('text/plain');
    expect(got.headers['content-length']).toBe(String(keyAuthorization.length));
    expect(got.headers.connection).toBe('close');
    expect(got.body).toBe(keyAuthorization);
    expect(got.raw.endsWith(keyAuthorization)).toBe(true);
    // HEAD: the same head, no body.
    const head = await rawExchange(plain, `HEAD /.well-known/acme-challenge/${token} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head).toContain(`Content-Length: ${keyAuthorization.length}\r\n`);
    expect(head.endsWith('\r\n\r\n')).toBe(true);
    // HTTP/1.0 without a Host still parses as HTTP/1.x: answered.
    expect((await fetchChallenge(`/.well-known/acme-challenge/${token}`, 'GET', '1.0')).body).toBe(keyAuthorization);
    // Replacing it serves the new one.
    const replaced = await call(proxy, 'PUT', `/acme/http-01/${token}`, `${token}.other-thumbprint`);
    expect(replaced).toEqual({ status: 200, json: { token, state: 'replaced' } });
    expect((await fetchChallenge(`/.well-known/acme-challenge/${token}`)).body).toBe(`${token}.other-thumbprint`);
    expect(proxy.output()).toContain(`event=acme_challenge type=http-01 token=${token} status=200`);
    expect(backend.seen).toHaveLength(0);
    expect((await call(proxy, 'DELETE', `/acme/http-01/${token}`)).status).toBe(200);
  });

  it('http-01: anything else under the challenge prefix is 404 (never redirected nor proxied), the rest still 308', async () => {
    await call(proxy, 'PUT', '/acme/http-01/known', 'known.thumb');
    for (const target of ['/.well-known/acme-challenge/unknown', '/.well-known/acme-challenge/known?x=1', '/.well-known/acme-challenge/known/deeper',
      '/.well-known/acme-challenge/', '/.well-known/acme-challenge/kn%6Fwn']) {
      const got = await fetchChallenge(target);
      expect([target, got.status, got.headers['content-type']]).toEqual([target, 404, 'text/plain']);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) expect((await fetchChallenge('/.well-known/acme-challenge/known', method)).status).toBe(404);
    const head404 = await rawExchange(plain, 'HEAD /.well-known/acme-challenge/unknown HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(head404).toMatch(/^HTTP\/1\.1 404 Not Found\r\n[^]*\r\n\r\n$/);
    // Outside the prefix (or merely beside it): the redirect as before.
    for (const target of ['/', '/.well-known/acme-challenge', '/.well-known/other/known', '/x/.well-known/acme-challenge/known']) {
      const got = await fetchChallenge(target);
      expect([target, got.status, got.headers.location]).toEqual([target, 308, `https://validator.example:${proxy.port}${target}`]);
    }
    // A challenge request must still be HTTP/1.x.
    expect(await rawExchange(plain, 'GET /.well-known/acme-challenge/known\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    // DELETE takes it away.
    expect(await call(proxy, 'DELETE', '/acme/http-01/known')).toEqual({ status: 200, json: { token: 'known', state: 'removed' } });
    expect((await fetchChallenge('/.well-known/acme-challenge/known')).status).toBe(404);
    expect(await call(proxy, 'DELETE', '/acme/http-01/known')).toEqual({ status: 404, json: { error: expect.stringMatching(/no such http-01 challenge/) } });
    expect(backend.seen).toHaveLength(0);
  });

  it('http-01: refuses bad tokens and bodies with 400, a full table with 507, and anyone without the admin token', async () => {
    const errorOf = async (method: string, target: string, body?: string): Promise<[number, string]> => {
      const { status, json } = await call(proxy, method, target, body);
      return [status, String(json.error)];
    };
    expect(await errorOf('PUT', '/acme/http-01/bad%21token', 'bad!token.t')).toEqual([400, expect.stringMatching(/token must be 1-128 characters of \[A-Za-z0-9_-\]/)]);
    expect(await errorOf('PUT', `/acme/http-01/${'t'.repeat(129)}`, `${'t'.repeat(129)}.x`)).toEqual([400, expect.stringMatching(/token must be/)]);
    expect(await errorOf('PUT', '/acme/http-01/a"b', 'a"b.x')).toEqual([400, expect.stringMatching(/token must be/)]);
    for (const body of ['other.thumb', 'tok', 'tok.', 'tok.th umb', ' tok.thumb', 'tok.thumb.more', `tok.${'x'.repeat(129)}`, ''])
      expect([body, ...(await errorOf('PUT', '/acme/http-01/tok', body))]).toEqual([body, 400, expect.stringMatching(/key authorization/)]);
    expect(await errorOf('PUT', '/acme/http-01/', 'x.y')).toEqual([400, expect.stringMatching(/token must be/)]);
    expect(await errorOf('DELETE', '/acme/http-01/bad%21')).toEqual([400, expect.stringMatching(/token must be/)]);
    expect((await call(proxy, 'GET', '/acme/http-01/tok')).status).toBe(405);
    expect((await call(proxy, 'POST', '/acme')).status).toBe(405);
    expect((await call(proxy, 'PUT', '/acme/dns-01/tok', 'x')).status).toBe(404);
    expect((await call(proxy, 'GET', '/nothing')).json.error).toMatch(/try .*\/acme/);
    // Admin token required, as on every admin route.
    expect((await call(proxy, 'PUT', '/acme/http-01/tok', 'tok.thumb', {})).status).toBe(401);
    expect((await call(proxy, 'PUT', '/acme/http-01/tok', 'tok.thumb', { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await call(proxy, 'GET', '/acme', undefined, {})).status).toBe(401);
    expect((await fetchChallenge('/.well-known/acme-challenge/tok')).status).toBe(404);
    // 16 at most.
    const tokens = Array.from({ length: 16 }, (_, i) => `full-${i}`);
    for (const t of tokens) expect((await call(proxy, 'PUT', `/acme/http-01/${t}`, `${t}.thumb`)).status).toBe(201);
    expect(await errorOf('PUT', '/acme/http-01/one-more', 'one-more.thumb')).toEqual([507, expect.stringMatching(/table is full \(16 challenges\)/)]);
    expect((await call(proxy, 'PUT', '/acme/http-01/full-3', 'full-3.again')).status).toBe(200);
    expect((await call(proxy, 'GET', '/acme')).json.http01).toEqual(tokens);
    for (const t of tokens) expect((await call(proxy, 'DELETE', `/acme/http-01/${t}`)).status).toBe(200);
  });

  it('tls-alpn-01: a validator gets the challenge certificate and acme-tls/1, then the proxy closes; other clients are untouched', async () => {
    const challenge = challengeCertificate('other.test', 'tok.thumbprint');
    expect(await call(proxy, 'PUT', '/acme/tls-alpn-01/other.test', challenge.pem)).toEqual({ status: 201, json: { name: 'other.test', state: 'added' } });
    // Validators, normal clients with and without ALPN for the same name, and the other certificate, all at once.
    const [validator, http11, noAlpn, local, authorized, anonymous] = await Promise.all([
      handshake(proxy.port, 'other.test', ['acme-tls/1']),
      handshake(proxy.port, 'other.test', ['http/1.1']),
      handshake(proxy.port, 'other.test', undefined),
      handshake(proxy.port, 'localhost', ['http/1.1']),
      httpsGet(proxy.port, 'localhost', CLIENT_TOKEN),
      httpsGet(proxy.port, 'localhost'),
    ]);
    expect(validator).toMatchObject({ alpn: 'acme-tls/1', fingerprint: challenge.fingerprint, closedByProxy: true, reused: false });
    expect(http11).toMatchObject({ alpn: 'http/1.1', fingerprint: fingerprintOf('other.test'), closedByProxy: false });
    expect(noAlpn).toMatchObject({ alpn: false, fingerprint: fingerprintOf('other.test'), closedByProxy: false });
    expect(local).toMatchObject({ alpn: 'http/1.1', fingerprint: fingerprintOf('localhost'), closedByProxy: false });
    expect(authorized).toEqual({ status: 200, fingerprint: fingerprintOf('localhost') });
    expect(anonymous).toEqual({ status: 401, fingerprint: fingerprintOf('localhost') });
    // The SNI name is compared without regard to case, and nothing sent after the handshake is read as HTTP.
    const pushy = await handshake(proxy.port, 'OTHER.Test', ['acme-tls/1'], { send: `GET /app HTTP/1.1\r\nHost: other.test\r\nX-Auth-Token: ${CLIENT_TOKEN}\r\n\r\n` });
    expect(pushy).toMatchObject({ alpn: 'acme-tls/1', fingerprint: challenge.fingerprint, closedByProxy: true, received: '' });
    expect(backend.seen.map((r) => r.url)).toEqual(['/app']);
    expect(proxy.output()).toContain('event=acme_challenge type=tls-alpn-01 name=other.test');
    const metrics = await (await request(`${proxy.adminUrl}/metrics`, { headers: admin })).body.text();
    expect(metrics).toMatch(/^uproxy_acme_challenges_answered_total\{type="tls-alpn-01"\} 2$/m);
    // openssl s_client, as another validator.
    const sClient = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${proxy.port}`, '-servername', 'other.test', '-alpn', 'acme-tls/1'],
      { input: '', encoding: 'utf8', timeout: 10_000 });
    const report = `${sClient.stdout}\n${sClient.stderr}`;
    expect(report).toContain('ALPN protocol: acme-tls/1');
    expect(report).toMatch(/subject=CN ?= ?other\.test/);
    expect(await call(proxy, 'DELETE', '/acme/tls-alpn-01/other.test')).toEqual({ status: 200, json: { name: 'other.test', state: 'removed' } });
  });

  it('tls-alpn-01: acme-tls/1 for a name without a challenge fails the handshake; DELETE and replace take effect', async () => {
    const refused = (name: string, alpn = ['acme-tls/1']): Promise<string> => handshake(proxy.port, name, alpn).then(() => 'accepted', (e: Error) => e.message);
    // No challenge at all, and then none for that name; offering http/1.1 beside it does not help.
    expect(await refused('localhost')).toMatch(/no application protocol/);
    const first = challengeCertificate('acme.test', 'tok.first');
    expect((await call(proxy, 'PUT', '/acme/tls-alpn-01/acme.test', first.pem)).status).toBe(201);
    expect(await refused('localhost')).toMatch(/no application protocol/);
    expect(await refused('other.test', ['acme-tls/1', 'http/1.1'])).toMatch(/no application protocol/);
    expect((await handshake(proxy.port, 'acme.test', ['acme-tls/1'])).fingerprint).toBe(first.fingerprint);
    // Replaced: the new certificate from the next handshake on.
    const second = challengeCertificate('acme.test', 'tok.second');
    expect(await call(proxy, 'PUT', '/acme/tls-alpn-01/ACME.test', second.pem)).toEqual({ status: 200, json: { name: 'ACME.test', state: 'replaced' } });
    expect((await handshake(proxy.port, 'acme.test', ['acme-tls/1'])).fingerprint).toBe(second.fingerprint);
    expect((await call(proxy, 'GET', '/acme')).json).toEqual({ http01: [], tls_alpn01: ['ACME.test'] });
    expect((await call(proxy, 'DELETE', '/acme/tls-alpn-01/acme.TEST')).status).toBe(200);
    expect(await refused('acme.test')).toMatch(/no application protocol/);
    expect((await call(proxy, 'DELETE', '/acme/tls-alpn-01/acme.test')).status).toBe(404);
    expect(await httpsGet(proxy.port, 'localhost', CLIENT_TOKEN)).toEqual({ status: 200, fingerprint: fingerprintOf('localhost') });
  });

  it('tls-alpn-01: a session of a serving certificate is not resumed with acme-tls/1 (it would show no certificate)', async () => {
    const challenge = challengeCertificate('other.test', 'tok.resume');
    expect((await call(proxy, 'PUT', '/acme/tls-alpn-01/other.test', challenge.pem)).status).toBe(201);
    try {
      const session = await sessionOf(proxy.port, 'other.test');
      expect((await handshake(proxy.port, 'other.test', ['http/1.1'], { session })).reused).toBe(true);
      expect(await handshake(proxy.port, 'other.test', ['acme-tls/1'], { session })).toMatchObject({ reused: false, fingerprint: challenge.fingerprint, alpn: 'acme-tls/1' });
    } finally {
      await call(proxy, 'DELETE', '/acme/tls-alpn-01/other.test');
    }
  });

  it("tls-alpn-01: takes acme-client's createAlpnCertificate, as the CLI sends it", async () => {
    const authz = { identifier: { type: 'dns', value: 'client.test' } } as Parameters<typeof acme.crypto.createAlpnCertificate>[0];
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, certificate] = await acme.crypto.createAlpnCertificate(authz, 'tok.client', key);
    const pem = `${certificate.toString().trim()}\n${key.toString().trim()}\n`;
    expect((await call(proxy, 'PUT', '/acme/tls-alpn-01/client.test', pem)).status).toBe(201);
    const got = await handshake(proxy.port, 'client.test', ['acme-tls/1']);
    expect(got).toMatchObject({ alpn: 'acme-tls/1', fingerprint: new X509Certificate(certificate).fingerprint256, closedByProxy: true });
    expect((await call(proxy, 'DELETE', '/acme/tls-alpn-01/client.test')).status).toBe(200);
  });

  it('tls-alpn-01: refuses unusable certificates and names with 400 (never quoting the PEM), a full table with 507', async () => {
    const errorOf = async (target: string, body: string): Promise<[number, string]> => {
      const { status, json } = await call(proxy, 'PUT', target, body);
      expect(JSON.stringify(json)).not.toMatch(/PRIVATE KEY|secret-looking/);
      return [status, String(json.error)];
    };
    const good = challengeCertificate('bad.test', 'tok.x');
    expect(await errorOf('/acme/tls-alpn-01/bad.test', 'secret-looking-text')).toEqual([400, expect.stringMatching(/PEM certificate/)]);
    const certOnly = good.pem.slice(0, good.pem.indexOf('-----BEGIN PRIVATE KEY'));
    expect(await errorOf('/acme/tls-alpn-01/bad.test', certOnly)).toEqual([400, expect.stringMatching(/private key/)]);
    const otherKey = certOnly + readFileSync(file('localhost.key'), 'utf8');
    expect(await errorOf('/acme/tls-alpn-01/bad.test', otherKey)).toEqual([400, expect.stringMatching(/private key/)]);
    expect(await errorOf('/acme/tls-alpn-01/bad.test', readFileSync(file('other.test.pem'), 'utf8'))).toEqual([400, expect.stringMatching(/acmeIdentifier/)]);
    expect(await errorOf('/acme/tls-alpn-01/bad.test', challengeCertificate('bad.test', 'tok.x', { critical: false }).pem)).toEqual([400, expect.stringMatching(/critical acmeIdentifier/)]);
    expect(await errorOf('/acme/tls-alpn-01/bad.test', challengeCertificate('bad.test', 'tok.x', { san: 'elsewhere.test' }).pem)).toEqual([400, expect.stringMatching(/subjectAltName does not name/)]);
    for (const name of ['bad_name.test', 'a..b', '.a', 'a.', `${'a'.repeat(64)}.test`, `${'abcdefghi.'.repeat(25)}test`, 'a%20b', '*.test'])
      expect([name, ...(await errorOf(`/acme/tls-alpn-01/${name}`, good.pem))]).toEqual([name, 400, expect.stringMatching(/must be a DNS name/)]);
    expect((await call(proxy, 'GET', '/acme')).json.tls_alpn01).toEqual([]);
    // 8 at most.
    const names = Array.from({ length: 8 }, (_, i) => `n${i}.test`);
    for (const name of names) expect((await call(proxy, 'PUT', `/acme/tls-alpn-01/${name}`, challengeCertificate(name, 'tok.x').pem)).status).toBe(201);
    expect(await errorOf('/acme/tls-alpn-01/bad.test', good.pem)).toEqual([507, expect.stringMatching(/table is full \(8 challenges\)/)]);
    expect((await call(proxy, 'PUT', '/acme/tls-alpn-01/n7.test', challengeCertificate('n7.test', 'tok.y').pem)).status).toBe(200);
    expect((await call(proxy, 'GET', '/acme')).json.tls_alpn01).toEqual(names);
    for (const name of names) expect((await call(proxy, 'DELETE', `/acme/tls-alpn-01/${name}`)).status).toBe(200);
    expect(proxy.output()).not.toContain('PRIVATE KEY');
  });

  it('GET /tls/certificates shows each certificate\'s issuer and serial as openssl prints them', async () => {
    const listed = (await call(proxy, 'GET', '/tls/certificates')).json as unknown as { index: number; names: string[]; issuer: string; serial: string }[];
    for (const [i, name] of ['localhost', 'other.test'].entries()) {
      const printed = openssl('x509', '-in', file(`${name}.crt`), '-noout', '-issuer', '-serial');
      expect(printed).toContain('issuer=CN = uproxy test CA');
      expect(listed[i]).toMatchObject({ index: i, issuer: 'uproxy test CA', serial: /serial=([0-9A-F]+)/.exec(printed)![1] });
    }
    // An issuer without a commonName: its whole name, on one line, in UTF-8.
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('nocn.key'), '-out', file('nocn.crt'),
      '-days', '1', '-utf8', '-subj', '/O=Org, Inc./OU=Ünit', '-addext', 'subjectAltName=DNS:nocn.test');
    const put = await call(proxy, 'PUT', '/tls/certificates/2', readFileSync(file('nocn.crt'), 'utf8') + readFileSync(file('nocn.key'), 'utf8'));
    const serial = /serial=([0-9A-F]+)/.exec(openssl('x509', '-in', file('nocn.crt'), '-noout', '-serial'))![1];
    expect(put).toEqual({ status: 200, json: { index: 2, names: ['nocn.test'], not_after: expect.any(Number), issuer: 'O = "Org, Inc.", OU = Ünit', serial } });
    expect(((await call(proxy, 'GET', '/stats')).json.tls as { certificates: unknown[] }).certificates[2]).toEqual(put.json);
  });
});
