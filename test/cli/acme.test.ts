import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCi } from '../support/prerequisites.js';
import { freePorts, startPebble, type Pebble } from '../support/pebble.js';
import { renewalLoop } from '../../cli/runtimes/acme-renewal.js';
import { BIN, initProject, uproxy } from './run.js';

/**
 * ACME end to end with a real CA: Debian's pebble (Let's Encrypt's test server) on loopback,
 * its DNS answering every name with 127.0.0.1, and a host fleet whose proxy answers pebble's
 * http-01 and tls-alpn-01 validations itself. pebble issues 45-second certificates so a
 * renewal comes due within the test, and rejects 15 % of good nonces, which acme-client
 * must retry. Every request goes to 127.0.0.1; pebble is stopped by PID.
 */

const DOMAIN = 'fleet.uproxy.test';
const VALIDITY_S = 45;

function missingPrerequisite(): string | undefined {
  for (const program of ['pebble', 'pebble-challtestsrv', 'openssl', 's6-supervise']) {
    try {
      execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    } catch {
      return `needs ${program} (Debian packages pebble, openssl, s6)`;
    }
  }
  return undefined;
}

const skip = skipUnlessCi(missingPrerequisite());

interface State {
  proxy: { listen: string; admin: string };
  machines: { name: string; role: string; pid: number | null; log: string }[];
}

let root: string;
let dir: string;
let pebble: Pebble;
let env: Record<string, string>;
let httpPort: number;
let tlsPort: number;
let token: string;
const otherPebbles: Pebble[] = [];
let transcript = '';

function editConfig(edit: (config: Record<string, any>) => void, project = dir): void {
  const file = join(project, 'uproxy.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, any>;
  edit(config);
  writeFileSync(file, JSON.stringify(config, null, 2));
}

function readState(project = dir): State {
  return JSON.parse(readFileSync(join(project, '.uproxy/state.json'), 'utf8')) as State;
}

function proxyPid(project = dir): number | null {
  return readState(project).machines.find((m) => m.role === 'proxy')!.pid;
}

/** The certificate a new TLS connection to the proxy gets for DOMAIN, and whether a client trusting `ca` accepts it. */
function served(ca: string, port = tlsPort): Promise<{ certificate: PeerCertificate; authorized: boolean; error: string | null }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: DOMAIN, ca, rejectUnauthorized: false }, () => {
      const certificate = socket.getPeerCertificate();
      resolve({ certificate, authorized: socket.authorized, error: socket.authorizationError ? String(socket.authorizationError) : null });
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** One GET through the proxy as a browser would make it: DOMAIN's name, pebble's root trusted. */
function get(ca: string, agent: HttpsAgent | false): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: tlsPort, servername: DOMAIN, path: '/', ca, agent, headers: { host: DOMAIN, 'x-auth-token': token }, timeout: 10_000 }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', reject);
    req.end();
  });
}

function proxyLog(): string {
  const proxy = readState().machines.find((m) => m.role === 'proxy')!;
  return readFileSync(proxy.log, 'utf8');
}

describe.skipIf(skip)('ACME with pebble on the host runtime', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'uproxy-acme-'));
    [httpPort, tlsPort] = await freePorts(2) as [number, number];
    pebble = await startPebble(root, { httpPort, tlsPort, validitySeconds: VALIDITY_S, nonceRejectPercent: 15 });
    env = { NODE_EXTRA_CA_CERTS: pebble.caFile };
    dir = await initProject(root, 'acme', 2, (config) => {
      Object.assign(config.proxy, {
        publish: `127.0.0.1:${tlsPort}`,
        publishHttp: `127.0.0.1:${httpPort}`,
        tls: { mode: 'acme', acme: { email: 'ops@uproxy.test', domains: [DOMAIN], directoryUrl: pebble.directoryUrl } },
      });
    });
    token = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
  });

  /** uproxy in the project, trusting pebble's listener, with acme-client's debug log kept in `transcript`. */
  async function acmeRun(args: readonly string[]) {
    const result = await uproxy(args, dir, 120_000, { ...env, DEBUG: 'acme-client' });
    transcript += result.stderr;
    return result;
  }

  afterAll(async () => {
    for (const project of readdirSync(root).filter((entry) => statSync(join(root, entry)).isDirectory())) await uproxy(['down', '--force'], join(root, project));
    for (const other of [pebble, ...otherPebbles]) await other?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('up gets a certificate through http-01 answered by the proxy, and the proxy serves it', async () => {
    const up = await acmeRun(['up']);
    expect(up.exitCode, up.stderr + up.stdout).toBe(0);
    expect(up.stderr).toMatch(/Note: new certificate from Pebble Intermediate CA \w+ \(the proxy serves a temporary certificate from the project CA until the ACME CA issues one\)/);

    const root = await pebble.root();
    const seen = await served(root);
    expect(seen.authorized, seen.error ?? '').toBe(true);
    expect(seen.certificate.subjectaltname).toBe(`DNS:${DOMAIN}`);
    expect(seen.certificate.issuer.CN).toMatch(/^Pebble Intermediate CA/);
    expect(await get(root, false)).toBe(200);

    // The CA fetched the token from the proxy's plain listener, which answered without a client token.
    expect(proxyLog()).toMatch(/acme_challenge type=http-01 token=\S+ status=200/);
    // Everything else on the plain listener is sent to HTTPS.
    const redirect = execFileSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '-H', `Host: ${DOMAIN}`, `http://127.0.0.1:${httpPort}/x`], { encoding: 'utf8' });
    expect(redirect).toBe(`308 https://${DOMAIN}:${tlsPort}/x`);

    expect(statSync(join(dir, '.uproxy/tls/proxy.pem')).mode & 0o777).toBe(0o600);
    const accounts = join(dir, '.uproxy/acme/accounts');
    const [accountKey] = readdirSync(accounts);
    expect(statSync(join(accounts, accountKey!)).mode & 0o777).toBe(0o600);

    const status = await acmeRun(['cert', 'status']);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/issuer +Pebble Intermediate CA/);
    expect(status.stdout).toContain(`names    ${DOMAIN}`);
    expect(status.stdout).toContain('The running proxy serves it.');
    // The supervisor keeps the renewal loop running beside the fleet.
    const renewal = join(dir, '.uproxy/supervise/acme-renewal');
    expect(execFileSync('s6-svstat', ['-o', 'up', renewal], { encoding: 'utf8' }).trim()).toBe('true');
    expect(readFileSync(join(renewal, 'run'), 'utf8')).toMatch(/while :; do sleep 43200; .* cert renew --scheduled; done/);
    // Nothing is due: a scheduled run says nothing and asks the CA nothing.
    const scheduled = await acmeRun(['cert', 'renew', '--scheduled']);
    expect([scheduled.exitCode, scheduled.stdout]).toEqual([0, '']);
    const ps = await acmeRun(['ps']);
    expect(ps.stdout).toMatch(/Certificate: expires .*, from Pebble Intermediate CA/);
    expect(ps.stdout).toContain(`https://${DOMAIN}:${tlsPort}/`);
  });

  it('down and up keep the account and the certificate: no new order', async () => {
    const before = (await served(await pebble.root())).certificate.serialNumber;
    const accounts = join(dir, '.uproxy/acme/accounts');
    const key = readFileSync(join(accounts, readdirSync(accounts)[0]!), 'utf8');
    expect((await acmeRun(['down'])).exitCode).toBe(0);
    expect(existsSync(join(dir, '.uproxy/supervise/acme-renewal'))).toBe(false);
    const up = await acmeRun(['up']);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(up.stderr).not.toMatch(/new certificate/);
    expect((await served(await pebble.root())).certificate.serialNumber).toBe(before);
    expect(readFileSync(join(accounts, readdirSync(accounts)[0]!), 'utf8')).toBe(key);
  });

  it('renews a certificate in the last third of its life under keep-alive load, with no failed request', async () => {
    const ca = await pebble.root();
    const first = (await served(ca)).certificate;
    const pid = proxyPid();
    let requests = 0;
    const failures: string[] = [];
    let stop = false;
    // Three keep-alive clients and one that opens a new TLS connection per request; bounded in time and count.
    const deadline = Date.now() + 60_000;
    const client = async (agent: HttpsAgent | false): Promise<void> => {
      while (!stop && Date.now() < deadline && requests < 50_000) {
        try {
          const status = await get(ca, agent);
          requests++;
          if (status !== 200) failures.push(`status ${status}`);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    };
    const agents = [0, 1, 2].map(() => new HttpsAgent({ keepAlive: true, maxSockets: 1 }));
    const load = Promise.all([...agents.map((agent) => client(agent)), client(false)]);
    // The loop the fleet's supervisor runs twice a day, here every second: it renews once the
    // certificate is due (a third of its life left), and is quiet before.
    const loop = spawn('sh', ['-c', renewalLoop(dir, process.execPath, BIN, 1)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let loopOutput = '';
    loop.stdout.on('data', (chunk: Buffer) => (loopOutput += chunk.toString()));
    loop.stderr.on('data', (chunk: Buffer) => (loopOutput += chunk.toString()));
    try {
      const until = Date.parse(first.valid_to);
      while (!loopOutput.includes('New certificate') && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      loop.kill('SIGTERM');
      stop = true;
      await load;
      for (const agent of agents) agent.destroy();
    }
    expect(loopOutput.trim().split('\n')).toEqual([expect.stringMatching(/^New certificate from Pebble Intermediate CA \w+ \(it expires .* inside its renewal window/)]);
    const second = await served(ca);
    expect(second.authorized, second.error ?? '').toBe(true);
    expect(second.certificate.serialNumber).not.toBe(first.serialNumber);
    expect(proxyPid()).toBe(pid);
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(50);
  }, 90_000);

  it('gets a certificate through tls-alpn-01 answered on the client port', async () => {
    const before = (await served(await pebble.root())).certificate.serialNumber;
    editConfig((config) => {
      config.proxy.tls.acme.challenge = 'tls-alpn-01';
    });
    const renew = await acmeRun(['cert', 'renew', '--force']);
    expect(renew.exitCode, renew.stderr).toBe(0);
    const seen = await served(await pebble.root());
    expect(seen.authorized, seen.error ?? '').toBe(true);
    expect(seen.certificate.serialNumber).not.toBe(before);
    expect(proxyLog()).toMatch(new RegExp(`acme_challenge type=tls-alpn-01 name=${DOMAIN.replace(/\./g, '\\.')}`));
  });

  it('keeps serving the current certificate when the CA cannot reach the proxy, and says why', async () => {
    const current = (await served(await pebble.root())).certificate.serialNumber;
    const pid = proxyPid();
    // A second CA that validates http-01 on a port where nothing listens.
    const [closed] = await freePorts(1);
    const unreachable = await startPebble(mkdtempSync(join(root, 'pebble-b-')), { httpPort: closed!, tlsPort: closed!, nonceRejectPercent: 0 });
    otherPebbles.push(unreachable);
    editConfig((config) => {
      config.proxy.tls.acme = { ...config.proxy.tls.acme, challenge: 'http-01', directoryUrl: unreachable.directoryUrl };
    });
    const renew = await uproxy(['cert', 'renew'], dir, 60_000, { NODE_EXTRA_CA_CERTS: unreachable.caFile });
    expect(renew.exitCode).toBe(1);
    expect(renew.stderr).toMatch(/the CA could not reach the proxy: .*connection refused/i);
    expect(renew.stderr).toContain(`proxy.publishHttp is 127.0.0.1:${httpPort}`);
    expect(renew.stderr).toContain(`${DOMAIN} resolves here to`.slice(0, DOMAIN.length));

    const after = await served(await pebble.root());
    expect(after.certificate.serialNumber).toBe(current);
    expect(proxyPid()).toBe(pid);
    const status = await acmeRun(['cert', 'status']);
    expect(status.stdout).toMatch(/last failure .*\(1 in a row\): the CA could not reach the proxy/);

    // up does not ask again during the backoff, and keeps the fleet serving.
    const up = await uproxy(['up'], dir, 120_000, { NODE_EXTRA_CA_CERTS: unreachable.caFile });
    expect(up.exitCode, up.stderr).toBe(0);
    expect(up.stderr).toMatch(/Note: the certificate is due, but the last attempt failed at .*uproxy leaves the CA alone until/);
    expect((await served(await pebble.root())).certificate.serialNumber).toBe(current);
  });

  it('says so when the directory cannot be reached or is not trusted', async () => {
    const [closed] = await freePorts(1);
    editConfig((config) => {
      config.proxy.tls.acme.directoryUrl = `https://127.0.0.1:${closed}/dir`;
    });
    const refused = await acmeRun(['cert', 'renew', '--force']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain(`cannot reach the ACME directory https://127.0.0.1:${closed}/dir`);
    editConfig((config) => {
      config.proxy.tls.acme.directoryUrl = pebble.directoryUrl;
    });
    const untrusted = await uproxy(['cert', 'renew', '--force'], dir, 60_000);
    expect(untrusted.exitCode).toBe(1);
    expect(untrusted.stderr).toMatch(/presents a certificate this host does not trust .*NODE_EXTRA_CA_CERTS/);
  });

  it('retried the nonces pebble rejected, and every issuance still succeeded', () => {
    // acme-client's debug log (DEBUG=acme-client) names each retry; pebble rejected 15 % of good nonces.
    expect(transcript).toMatch(/Caught invalid nonce error, retrying \(1\/5\)/);
  });

  it('a first issuance that fails leaves the fleet up on a temporary certificate and fails up', async () => {
    const [closed] = await freePorts(1);
    const [plain, client] = await freePorts(2);
    const other = await startPebble(mkdtempSync(join(root, 'pebble-c-')), { httpPort: closed!, tlsPort: closed!, nonceRejectPercent: 0 });
    otherPebbles.push(other);
    const project = await initProject(root, 'acme-first', 1, (config) => {
      Object.assign(config.proxy, {
        publish: `127.0.0.1:${client}`,
        publishHttp: `127.0.0.1:${plain}`,
        tls: { mode: 'acme', acme: { email: 'ops@uproxy.test', domains: [DOMAIN], directoryUrl: other.directoryUrl } },
      });
    });
    const up = await uproxy(['up'], project, 120_000, { NODE_EXTRA_CA_CERTS: other.caFile });
    expect(up.exitCode).toBe(1);
    expect(up.stderr).toMatch(/the fleet is up, but its proxy serves a temporary certificate from the project CA, which browsers refuse: no certificate from/);
    const temporary = await served(readFileSync(join(project, '.uproxy/tls/ca.pem'), 'utf8'), client!);
    expect(temporary.authorized, temporary.error ?? '').toBe(true);
    expect(temporary.certificate.subjectaltname).toContain(`DNS:${DOMAIN}`);
  });
});
