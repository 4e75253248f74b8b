import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateFacts, ensureCa, issueProxyCertificate } from '../../cli/tls/local-ca.js';
import { proxyCertificateNames } from '../../cli/tls/renewal.js';
import { uproxy } from './run.js';

/**
 * HTTPS on the host runtime with the project's local CA: real curl and Node TLS clients on
 * loopback, the real proxy. The token never goes on curl's command line: it reads the header
 * from a file (`-H @file`).
 */

interface State {
  proxy: { listen: string; admin: string; tls?: string };
  machines: { name: string; role: string; pid: number | null; log: string }[];
}

let root: string;
let dir: string;
let token: string;
let headerFile: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-https-'));
  const init = await uproxy(['init', 'secure', '--backends', '2'], root);
  expect(init.exitCode, init.stderr).toBe(0);
  dir = join(root, 'secure');
  const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
  Object.assign(config.proxy, { port: 0, adminPort: 0, tls: { mode: 'local-ca' } });
  writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
  token = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
  headerFile = join(root, 'token-header');
  writeFileSync(headerFile, `X-Auth-Token: ${token}\n`, { mode: 0o600 });
});

afterAll(async () => {
  for (const project of readdirSync(root).filter((entry) => !entry.endsWith('header'))) await uproxy(['down', '--force'], join(root, project));
  rmSync(root, { recursive: true, force: true });
});

function readState(): State {
  return JSON.parse(readFileSync(join(dir, '.uproxy/state.json'), 'utf8')) as State;
}

function port(state: State): number {
  return Number(state.proxy.listen.split(':')[1]);
}

/** curl's status code for `args`, run in the project directory. */
function curlStatus(args: readonly string[]): string {
  return execFileSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', ...args], { cwd: dir, encoding: 'utf8' });
}

/** The serial number of the certificate the proxy hands a new connection, checked against the project CA. */
function servedSerial(state: State): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: port(state), servername: 'localhost', ca: readFileSync(join(dir, '.uproxy/tls/ca.pem')) }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

function fileSerial(): string {
  const pem = readFileSync(join(dir, '.uproxy/tls/proxy.pem'), 'utf8');
  return execFileSync('openssl', ['x509', '-noout', '-serial'], { input: pem, encoding: 'utf8' }).trim().replace(/^serial=/, '');
}

describe('HTTPS with the local CA on the host runtime', () => {
  it('serves HTTPS that curl trusts through the project CA; keys are 0600 and on no command line', { timeout: 240_000 }, async () => {
    const result = await uproxy(['up'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    const state = readState();
    expect(state.proxy.tls).toBe('local-ca');
    const line = `curl --cacert .uproxy/tls/ca.pem -H "X-Auth-Token: $(cat .uproxy/client-token)" https://localhost:${port(state)}/`;
    expect(result.stdout).toContain(line);
    expect(result.stdout).toMatch(/^Certificate: expires \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in (29|30) days\), from uproxy local CA \(secure\)$/m);
    expect(result.stdout + result.stderr).not.toContain(token);

    for (const file of ['ca.key', 'proxy.pem']) expect(statSync(join(dir, '.uproxy/tls', file)).mode & 0o777).toBe(0o600);
    const proxy = state.machines.find((m) => m.role === 'proxy')!;
    // The proxy's own PID as ps reports it (the state records its supervisor's).
    const listed = JSON.parse((await uproxy(['ps', '--json'], dir)).stdout) as { machines: { name: string; pid: number }[] };
    const argv = readFileSync(`/proc/${listed.machines.find((m) => m.name === 'proxy')!.pid}/cmdline`, 'utf8').split('\0');
    expect(argv[argv.indexOf('--tls-cert') + 1]).toBe(join(dir, '.uproxy/tls/proxy.pem'));
    expect(argv.join(' ')).not.toContain('PRIVATE KEY');
    expect(readFileSync(proxy.log, 'utf8')).not.toContain('PRIVATE KEY');

    const url = `https://localhost:${port(state)}/`;
    expect(curlStatus(['--cacert', '.uproxy/tls/ca.pem', '-H', `@${headerFile}`, url])).toBe('200');
    expect(curlStatus(['--cacert', '.uproxy/tls/ca.pem', url])).toBe('401');
    // Without the CA, curl refuses the certificate (exit 60), so trust really comes from ca.pem.
    expect(() => execFileSync('curl', ['-sS', '-o', '/dev/null', '--max-time', '10', url], { cwd: dir, stdio: 'pipe' })).toThrow();

    // The printed line as a user pastes it, but with the header read from the file rather than
    // by `$(cat ...)`, which would put the token on curl's command line here.
    const pasted = line.replace('-H "X-Auth-Token: $(cat .uproxy/client-token)"', `-H @${headerFile}`);
    expect(pasted).not.toBe(line);
    const status = execFileSync('sh', ['-c', `${pasted} -sS -o /dev/null -w '%{http_code}' --max-time 10`], { cwd: dir, encoding: 'utf8' });
    expect(status).toBe('200');
  });

  it('ps shows the https curl line and the certificate expiry', { timeout: 60_000 }, async () => {
    const state = readState();
    const ps = await uproxy(['ps'], dir);
    expect(ps.exitCode, ps.stderr).toBe(0);
    expect(ps.stdout).toContain(`--cacert .uproxy/tls/ca.pem -H "X-Auth-Token: $(cat .uproxy/client-token)" https://localhost:${port(state)}/`);
    expect(ps.stdout).toMatch(/^Certificate: expires .* UTC \(in (29|30) days\), from uproxy local CA \(secure\)$/m);
    const json = JSON.parse((await uproxy(['ps', '--json'], dir)).stdout) as { certificateExpiry: number; proxy: { tls: string } };
    expect(json.proxy.tls).toBe('local-ca');
    expect(json.certificateExpiry).toBe(Math.floor(certificateFacts(readFileSync(join(dir, '.uproxy/tls/proxy.pem'), 'utf8'))!.notAfter / 1000));
  });

  it('up renews a certificate with a third of its life left and swaps it into the running proxy, no restart', { timeout: 240_000 }, async () => {
    const before = readState();
    const pid = before.machines.find((m) => m.role === 'proxy')!.pid;
    const first = await servedSerial(before);
    expect(first).toBe(fileSerial());

    // A certificate from the project CA issued 21 of its 30 days ago: what the file holds after
    // three weeks without an `up`. The rule, not the test, decides it is due.
    const { ca } = await ensureCa(dir, 'secure');
    const aged = await issueProxyCertificate(ca, proxyCertificateNames(), { now: Date.now() - 21 * 86_400_000 });
    writeFileSync(join(dir, '.uproxy/tls/proxy.pem'), aged, { mode: 0o600 });
    const agedSerial = fileSerial();

    const result = await uproxy(['up'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/new proxy certificate in .uproxy\/tls\/proxy.pem: a third of its lifetime or less is left/);
    expect(result.stderr).toContain('the running proxy now serves the new certificate (no restart)');
    const after = readState();
    expect(after.machines.find((m) => m.role === 'proxy')!.pid).toBe(pid);

    const renewed = fileSerial();
    expect(renewed).not.toBe(agedSerial);
    expect(renewed).not.toBe(first);
    expect(await servedSerial(after)).toBe(renewed);
    expect(statSync(join(dir, '.uproxy/tls/proxy.pem')).mode & 0o777).toBe(0o600);
    expect(curlStatus(['--cacert', '.uproxy/tls/ca.pem', '-H', `@${headerFile}`, `https://localhost:${port(after)}/`])).toBe('200');

    // Renewed once: the next up finds it current and leaves proxy and certificate alone.
    const again = await uproxy(['up'], dir);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/new proxy certificate|now serves/);
    expect(fileSerial()).toBe(renewed);
  });
});

describe('HTTPS with your own certificate files on the host runtime', () => {
  let own: string;
  beforeAll(async () => {
    const init = await uproxy(['init', 'own', '--backends', '1'], root);
    expect(init.exitCode, init.stderr).toBe(0);
    own = join(root, 'own');
  });

  /** A self-signed ECDSA P-256 certificate for localhost in certs/, made by openssl as a user would. */
  function makeCertificate(): string {
    execFileSync('mkdir', ['-p', join(own, 'certs')]);
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '90', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(own, 'certs/key.pem'), '-out', join(own, 'certs/chain.pem'),
    ], { stdio: 'pipe' });
    return execFileSync('openssl', ['x509', '-noout', '-serial', '-in', join(own, 'certs/chain.pem')], { encoding: 'utf8' }).trim().replace(/^serial=/, '');
  }

  it('serves them, and hands changed files to the running proxy without a restart', { timeout: 240_000 }, async () => {
    const firstSerial = makeCertificate();
    const config = JSON.parse(readFileSync(join(own, 'uproxy.json'), 'utf8'));
    Object.assign(config.proxy, { port: 0, adminPort: 0, tls: { mode: 'files', certFile: 'certs/chain.pem', keyFile: 'certs/key.pem' } });
    writeFileSync(join(own, 'uproxy.json'), JSON.stringify(config, null, 2));
    const ownToken = readFileSync(join(own, '.uproxy/client-token'), 'utf8').trim();
    const ownHeader = join(root, 'own-header');
    writeFileSync(ownHeader, `X-Auth-Token: ${ownToken}\n`, { mode: 0o600 });

    const result = await uproxy(['up'], own);
    expect(result.exitCode, result.stderr).toBe(0);
    const state = JSON.parse(readFileSync(join(own, '.uproxy/state.json'), 'utf8')) as State;
    const url = `https://localhost:${port(state)}/`;
    expect(result.stdout).toContain(`curl -H "X-Auth-Token: $(cat .uproxy/client-token)" ${url}`);
    expect(statSync(join(own, '.uproxy/tls/proxy.pem')).mode & 0o777).toBe(0o600);
    const status = (): string =>
      execFileSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '--cacert', 'certs/chain.pem', '-H', `@${ownHeader}`, url], { cwd: own, encoding: 'utf8' });
    expect(status()).toBe('200');
    const served = (): string =>
      execFileSync('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port(state)} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial`], { encoding: 'utf8' })
        .trim().replace(/^serial=/, '');
    expect(served()).toBe(firstSerial);

    const pid = state.machines.find((m) => m.role === 'proxy')!.pid;
    const secondSerial = makeCertificate();
    const again = await uproxy(['up'], own);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/new proxy certificate in .uproxy\/tls\/proxy.pem: proxy\.tls\.certFile or keyFile changed/);
    const after = JSON.parse(readFileSync(join(own, '.uproxy/state.json'), 'utf8')) as State;
    expect(after.machines.find((m) => m.role === 'proxy')!.pid).toBe(pid);
    expect(served()).toBe(secondSerial);
    expect(status()).toBe('200');
  });
});

describe('publishing a host fleet (proxy.publish)', () => {
  let published: string;
  beforeAll(async () => {
    const init = await uproxy(['init', 'public', '--backends', '1'], root);
    expect(init.exitCode, init.stderr).toBe(0);
    published = join(root, 'public');
  });

  /** A free TCP port, found by binding port 0 on every address. */
  async function freePort(): Promise<number> {
    const { createServer } = await import('node:net');
    return new Promise((resolve) => {
      const server = createServer().listen(0, '0.0.0.0', () => {
        const { port: free } = server.address() as { port: number };
        server.close(() => resolve(free));
      });
    });
  }

  function configure(proxy: Record<string, unknown>): void {
    const config = JSON.parse(readFileSync(join(published, 'uproxy.json'), 'utf8'));
    Object.assign(config.proxy, { port: 0, adminPort: 0 }, proxy);
    writeFileSync(join(published, 'uproxy.json'), JSON.stringify(config, null, 2));
  }

  it('refuses plain HTTP on every address unless allowPlainHttp says it is meant', { timeout: 60_000 }, async () => {
    configure({ publish: `0.0.0.0:${await freePort()}`, tls: { mode: 'off' } });
    const up = await uproxy(['up'], published);
    expect(up.exitCode).toBe(1);
    expect(up.stderr).toMatch(/proxy\.publish "0\.0\.0\.0:\d+" would serve plain HTTP beyond this host.*allowPlainHttp/);
    expect(readdirSync(published)).not.toContain('.uproxy/state.json');
  });

  it('listens on the published address itself, over HTTPS; the admin API stays on loopback', { timeout: 120_000 }, async () => {
    const free = await freePort();
    configure({ publish: `0.0.0.0:${free}`, tls: { mode: 'local-ca' } });
    const up = await uproxy(['up'], published);
    expect(up.exitCode, up.stderr).toBe(0);
    const state = JSON.parse(readFileSync(join(published, '.uproxy/state.json'), 'utf8')) as State;
    expect(state.proxy.listen).toBe(`0.0.0.0:${free}`);
    expect(state.proxy.admin).toMatch(/^127\.0\.0\.1:/);
    expect(up.stdout).toContain(`https://localhost:${free}/`);
    const listening = readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((line) => / 0A /.test(line));
    expect(listening.some((line) => line.includes(`00000000:${free.toString(16).toUpperCase().padStart(4, '0')}`))).toBe(true);
    const status = execFileSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '--cacert', '.uproxy/tls/ca.pem',
      '-H', `X-Auth-Token: ${readFileSync(join(published, '.uproxy/client-token'), 'utf8').trim()}`, `https://localhost:${free}/`], { cwd: published, encoding: 'utf8' });
    expect(status).toBe('200');
    expect((await uproxy(['down'], published)).exitCode).toBe(0);
  });
});
