import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findGuestKernel } from '../../cli/runtimes/kernel.js';
import { QmpClient } from '../../cli/runtimes/qmp.js';
import { ensureCa, issueProxyCertificate } from '../../cli/tls/local-ca.js';
import { privateKey } from '../../cli/tls/pem.js';
import { proxyCertificateNames } from '../../cli/tls/renewal.js';
import { BIN, uproxy } from '../cli/run.js';
import { addNamespace, deleteNamespace, inNamespace, netnsWrap, whyCannotRun } from './netns.js';
import { skipUnlessCi } from '../support/prerequisites.js';

/**
 * `up --runtime qemu --backends 3` end to end under TCG, with microvm guests running the real
 * static proxy and backend. Needs root; CI runs as root. uproxy runs inside a namespace this
 * file creates (`inner`), so its bridge, taps, nftables table and VM addresses never touch
 * the host; a second namespace (`outer`, joined by a veth pair) plays a client from elsewhere.
 */

const skip = skipUnlessCi(whyCannotRun());
const inner = `upq-in-${process.pid}`;
const outer = `upq-out-${process.pid}`;
const CLIENT = fileURLToPath(new URL('./client.mjs', import.meta.url));
const PUBLISHED = '10.99.0.1:9090';
/** The proxy VM's client port: HTTPS with the project CA, as `init` sets up. */
const PROXY = 'https://172.44.0.2:8080/';

let root: string;
let dir: string;
let token: string;

interface ClientResult {
  statuses: Record<string, number>;
  backends: Record<string, number>;
  errors: string[];
}

/** Sends `count` requests from inside namespace `ns`, over `clients` keep-alive connections for at most `maxMs`. */
async function requests(ns: string, url: string, count: number, withToken = token, timeoutMs = 5000, untilFile = '', clients = 1, maxMs = 240_000): Promise<ClientResult> {
  const [file, ...wrap] = netnsWrap(ns);
  const args = [...wrap, 'node', CLIENT, url, withToken, String(count), String(timeoutMs), untilFile, String(clients), String(maxMs)];
  const result = await execa(file!, args, { reject: false, timeout: 300_000, env: { UPROXY_TEST_CA: join(dir, '.uproxy/tls/ca.pem') } });
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as ClientResult;
}

function uproxyInside(args: string[], timeoutMs = 300_000) {
  return execa('ip', ['netns', 'exec', inner, 'node', BIN, ...args], { cwd: dir, reject: false, timeout: timeoutMs, stdin: 'ignore', all: true });
}

/** A page fetched from inside the uproxy namespace (a backend's, straight from the bridge). */
async function pageOf(url: string): Promise<string> {
  const result = await execa('ip', ['netns', 'exec', inner, 'curl', '-sS', '--max-time', '5', url], { reject: false, timeout: 10_000 });
  expect(result.exitCode, result.stderr).toBe(0);
  return result.stdout;
}

/** Each recorded machine's QEMU PID, by machine name. */
function machinePids(projectDir = dir): Record<string, number | null> {
  const state = JSON.parse(readFileSync(join(projectDir, '.uproxy/state.json'), 'utf8')) as { machines: { name: string; pid: number | null }[] };
  return Object.fromEntries(state.machines.map((m) => [m.name, m.pid]));
}

/** The network interfaces of a namespace, by name. */
function linksOf(ns: string): string[] {
  return inNamespace(ns, 'ip', '-br', 'link').split('\n').filter(Boolean).map((line) => line.split(/[\s@]/)[0]!).sort();
}

function qemuProcessesOf(projectDir: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return argv.startsWith('qemu-system-x86_64\0') && argv.includes(`${projectDir}/`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe.skipIf(skip !== undefined)(`qemu runtime: a fleet of microvm guests${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    // The guests' kernel is fetched with apt-get from the host's namespace: the test
    // namespaces have no route to a Debian mirror.
    await findGuestKernel();
    addNamespace(inner);
    addNamespace(outer);
    execFileSync('ip', ['link', 'add', 'upq-veth-in', 'netns', inner, 'type', 'veth', 'peer', 'name', 'upq-veth-out', 'netns', outer]);
    inNamespace(inner, 'ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'upq-veth-in');
    inNamespace(inner, 'ip', 'link', 'set', 'upq-veth-in', 'up');
    inNamespace(inner, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    inNamespace(outer, 'ip', 'addr', 'add', '10.99.0.2/24', 'dev', 'upq-veth-out');
    inNamespace(outer, 'ip', 'link', 'set', 'upq-veth-out', 'up');
    // A client that routes to the VM subnet on purpose: only the published port may answer it.
    inNamespace(outer, 'ip', 'route', 'add', '172.44.0.0/24', 'via', '10.99.0.1');

    root = mkdtempSync(join(tmpdir(), 'uproxy-qemu-'));
    const init = await uproxy(['init', 'vmfleet', '--backends', '3'], root);
    expect(init.exitCode, init.stderr).toBe(0);
    dir = join(root, 'vmfleet');
    const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
    expect(config.proxy.tls).toEqual({ mode: 'local-ca' });
    config.proxy.publish = `0.0.0.0:${PUBLISHED.split(':')[1]}`;
    // 0.0.0.0 names no address a certificate could: the outside client's one is listed.
    config.proxy.tls.names = [PUBLISHED.split(':')[0]];
    // What up does with VMs that stopped, seen without a supervisor starting them first
    // (test/qemu/restart.test.ts covers the restart policy).
    config.restart = 'no';
    writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
    // A backend app that can be told to exit (GET /exit), as one that crashes would: its VM must
    // power off and `up` replace it.
    const server = join(dir, 'backend/src/server.c');
    const route = 'if (request_path_is(&c->req, "/health"))';
    expect(readFileSync(server, 'utf8')).toContain(route);
    writeFileSync(server, readFileSync(server, 'utf8').replace(route, `if (request_path_is(&c->req, "/exit")) exit(7);\n    else ${route}`));
    token = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
  }, 120_000);

  afterAll(async () => {
    for (const project of [dir, root && join(root, 'badfleet')]) {
      if (project && existsSync(join(project, '.uproxy/state.json'))) {
        await execa('ip', ['netns', 'exec', inner, 'node', BIN, 'down', '--force'], { cwd: project, reject: false, timeout: 60_000, stdin: 'ignore' });
      }
    }
    deleteNamespace(outer);
    deleteNamespace(inner);
    if (root) rmSync(root, { recursive: true, force: true });
  }, 120_000);

  it('starts 1 proxy + 3 backend VMs and waits until all are healthy', async () => {
    const started = performance.now();
    const up = await uproxyInside(['up', '--runtime', 'qemu', '--backends', '3', '--accel', 'tcg']);
    expect(up.exitCode, up.all).toBe(0);
    process.stderr.write(`qemu fleet up to healthy (1 proxy + 3 backends, TCG): ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    expect(up.stdout).toMatch(/backend-3\s+backend\s+172\.44\.0\.5:8080/);
    expect(qemuProcessesOf(dir)).toHaveLength(4);
  }, 330_000);

  it('serves HTTPS with the project CA: up\'s curl line works, and the key is only in the proxy\'s 0600 initramfs', async () => {
    const ps = await uproxyInside(['ps']);
    const line = ps.stdout.split('\n').find((l) => l.startsWith('curl '))!;
    expect(line).toBe('curl --cacert .uproxy/tls/ca.pem -H "X-Auth-Token: $(cat .uproxy/client-token)" https://172.44.0.2:8080/');
    const status = await execa('ip', ['netns', 'exec', inner, 'sh', '-c', `${line} -sS -o /dev/null -w '%{http_code}' --max-time 10`], { cwd: dir, reject: false });
    expect(status.stdout, status.stderr).toBe('200');
    // Plain HTTP to the TLS port: no HTTP answer, nothing forwarded.
    const plain = await execa('ip', ['netns', 'exec', inner, 'curl', '-sS', '--max-time', '5', '-H', `X-Auth-Token: ${token}`, 'http://172.44.0.2:8080/'], { reject: false });
    expect(plain.exitCode).not.toBe(0);
    expect(plain.stdout).not.toContain('Hello from');

    expect(statSync(join(dir, '.uproxy/vm/proxy.cpio')).mode & 0o777).toBe(0o600);
    const proxyPid = machinePids().proxy!;
    const argv = readFileSync(`/proc/${proxyPid}/cmdline`, 'utf8');
    expect(argv).not.toContain('PRIVATE KEY');
    expect(argv).toContain('proxy.cpio');
    for (const log of readdirSync(join(dir, '.uproxy/logs'))) expect(readFileSync(join(dir, '.uproxy/logs', log), 'utf8'), log).not.toContain('PRIVATE KEY');
  }, 60_000);

  it('spreads 300 requests evenly over the 3 backend VMs, and 401s a wrong token', async () => {
    const result = await requests(inner, PROXY, 300);
    expect(result.errors).toEqual([]);
    expect(result.statuses).toEqual({ 200: 300 });
    expect(Object.keys(result.backends).sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);
    for (const count of Object.values(result.backends)) expect(count).toBeGreaterThanOrEqual(90);

    const wrong = await requests(inner, PROXY, 3, 'not-the-token');
    expect(wrong.statuses).toEqual({ 401: 3 });
  }, 180_000);

  it('serves an outside client through the published port only', async () => {
    const published = await requests(outer, `https://${PUBLISHED}/`, 30);
    expect(published.statuses).toEqual({ 200: 30 });
    expect(Object.keys(published.backends).sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);

    for (const direct of ['http://172.44.0.3:8080/', 'http://172.44.0.2:8081/stats', PROXY]) {
      const attempt = await requests(outer, direct, 1, token, 2000);
      expect(attempt.statuses, direct).toEqual({});
      expect(attempt.errors, direct).toHaveLength(1);
    }
  }, 120_000);

  it('routes around a backend VM stopped through QMP', async () => {
    const qmp = await QmpClient.connect(join(dir, '.uproxy/vm/backend-2.qmp'));
    await qmp.quit();
    qmp.close();
    const deadline = Date.now() + 60_000;
    let last: ClientResult | undefined;
    while (Date.now() < deadline) {
      last = await requests(inner, PROXY, 9);
      if (last.statuses[200] === 9 && last.backends['backend-2'] === undefined) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const after = await requests(inner, PROXY, 60);
    expect(after.statuses).toEqual({ 200: 60 });
    expect(Object.keys(after.backends).sort()).toEqual(['backend-1', 'backend-3']);
  }, 120_000);

  it('up restarts only the backend VM that stopped; on an unchanged fleet it changes nothing', async () => {
    const before = machinePids();
    const up = await uproxyInside(['up', '--runtime', 'qemu', '--backends', '3', '--accel', 'tcg']);
    expect(up.exitCode, up.all).toBe(0);
    const after = machinePids();
    expect(after['backend-2']).not.toBe(before['backend-2']);
    for (const name of ['backend-1', 'backend-3', 'proxy']) expect(after[name], name).toBe(before[name]);
    const spread = await requests(inner, PROXY, 30);
    expect(Object.keys(spread.backends).sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);

    const again = await uproxyInside(['up', '--runtime', 'qemu', '--backends', '3', '--accel', 'tcg']);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.all).toMatch(/already up to date/);
    expect(machinePids()).toEqual(after);
    expect(qemuProcessesOf(dir).sort()).toEqual(Object.values(after).sort());
  }, 330_000);

  it('a backend app that exits inside its VM powers the VM off, and up replaces that VM alone', async () => {
    const before = machinePids();
    const exited = await requests(inner, 'http://172.44.0.5:8080/exit', 1, token, 3000);
    expect(exited.errors).toHaveLength(1);
    const deadline = Date.now() + 60_000;
    while (qemuProcessesOf(dir).includes(before['backend-3']!) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(qemuProcessesOf(dir)).not.toContain(before['backend-3']);
    expect(readFileSync(join(dir, '.uproxy/logs/backend-3.log'), 'utf8')).toContain('uproxy-init: /uproxy/program exited with status 7');
    const ps = await uproxyInside(['ps']);
    expect(ps.stdout).toMatch(/^backend-3\s+backend\s+\S+\s+\d+\s+-\s+exited/m);

    const up = await uproxyInside(['up', '--runtime', 'qemu', '--backends', '3', '--accel', 'tcg']);
    expect(up.exitCode, up.all).toBe(0);
    const after = machinePids();
    expect(after['backend-3']).not.toBe(before['backend-3']);
    for (const name of ['backend-1', 'backend-2', 'proxy']) expect(after[name], name).toBe(before[name]);
    const spread = await requests(inner, PROXY, 30);
    expect(spread.statuses).toEqual({ 200: 30 });
    expect(Object.keys(spread.backends).sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);
  }, 330_000);

  it('replaces the proxy VM under 64 keep-alive clients: it drains and exits first, so no backend is left holding its connections', async () => {
    const before = machinePids();
    const enough = join(root, 'proxy-replaced');
    const load = requests(inner, PROXY, 200_000, token, 5000, enough, 64, 240_000);
    try {
      // The load must have reached every backend through the old proxy before it is replaced.
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
      config.proxy.algorithm = 'least-conn';
      writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
      const up = await uproxyInside(['up', '--runtime', 'qemu', '--backends', '3', '--accel', 'tcg']);
      expect(up.exitCode, up.all).toBe(0);
    } finally {
      writeFileSync(enough, '');
    }
    const during = await load;
    expect(during.statuses[200], JSON.stringify(during.errors.slice(0, 5))).toBeGreaterThan(500);
    const after = machinePids();
    expect(after.proxy).not.toBe(before.proxy);
    for (const name of ['backend-1', 'backend-2', 'backend-3']) expect(after[name], name).toBe(before[name]);

    // The new proxy's own pooled connections close after 4 idle seconds (its upstream idle
    // timeout); the old proxy's would stay until the backends' 60 s idle timeout, had it
    // vanished without a FIN. Between the two, each backend must hold a handful at most.
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    for (const [name, ip] of [['backend-1', '172.44.0.3'], ['backend-2', '172.44.0.4'], ['backend-3', '172.44.0.5']]) {
      const page = await pageOf(`http://${ip}:8080/`);
      const open = Number(/Open connections: (\d+)/.exec(page)?.[1]);
      expect(open, `${name}: ${page}`).toBeLessThanOrEqual(4);
    }
    const ps = await uproxyInside(['ps']);
    expect(ps.exitCode, ps.all).toBe(0);
    expect(ps.stdout).toMatch(/^proxy\s+proxy\s+\S+\s+\d+\s+-\s+running, serving$/m);
    for (const name of ['backend-1', 'backend-2', 'backend-3']) expect(ps.stdout).toMatch(new RegExp(`^${name}\\s+backend\\s+\\S+\\s+\\d+\\s+-\\s+running, up$`, 'm'));
    const spread = await requests(inner, PROXY, 30);
    expect(spread.statuses).toEqual({ 200: 30 });
  }, 330_000);

  it('a replacement proxy VM that cannot become healthy keeps serving, and the next up brings the fleet back', async () => {
    const before = machinePids();
    const configPath = join(dir, 'uproxy.json');
    const configBefore = readFileSync(configPath, 'utf8');
    // A new health path restarts the proxy (its command line changes) and fails every check.
    const config = JSON.parse(configBefore);
    config.backends.health = { path: '/no-such-page' };
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    try {
      const failed = await uproxyInside(['up', '--runtime', 'qemu', '--backends', '3', '--accel', 'tcg', '--timeout', '20']);
      expect(failed.exitCode, failed.all).toBe(1);
      expect(failed.stderr).toContain('the new proxy keeps running');
      const kept = machinePids();
      expect(kept.proxy).not.toBe(before.proxy);
      expect(qemuProcessesOf(dir)).toContain(kept.proxy);
      const ps = await uproxyInside(['ps']);
      expect(ps.exitCode, ps.all).toBe(0);
      expect(ps.stdout).toMatch(/^proxy\s+proxy\s+\S+\s+\d+\s+-\s+running, serving$/m);
      // One request: the proxy answers it itself (no backend is up under this health path).
      expect((await requests(inner, PROXY, 1)).statuses).toEqual({ 503: 1 });
    } finally {
      writeFileSync(configPath, configBefore);
    }
    const up = await uproxyInside(['up', '--runtime', 'qemu', '--backends', '3', '--accel', 'tcg']);
    expect(up.exitCode, up.all).toBe(0);
    const spread = await requests(inner, PROXY, 30);
    expect(spread.statuses).toEqual({ 200: 30 });
    expect(Object.keys(spread.backends).sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);
  }, 330_000);

  it('scales to 5 backend VMs and back to 2 through the admin API: only the backends that change start or stop, the proxy VM keeps running', async () => {
    const three = machinePids();
    const five = await uproxyInside(['up', '--runtime', 'qemu', '--backends', '5', '--accel', 'tcg']);
    expect(five.exitCode, five.all).toBe(0);
    const scaled = machinePids();
    expect(Object.keys(scaled).sort()).toEqual(['backend-1', 'backend-2', 'backend-3', 'backend-4', 'backend-5', 'proxy']);
    for (const name of ['backend-1', 'backend-2', 'backend-3', 'proxy']) expect(scaled[name], name).toBe(three[name]);
    expect(qemuProcessesOf(dir)).toHaveLength(6);
    const wide = await requests(inner, PROXY, 50);
    expect(wide.statuses).toEqual({ 200: 50 });
    expect(Object.keys(wide.backends).sort()).toEqual(['backend-1', 'backend-2', 'backend-3', 'backend-4', 'backend-5']);

    const two = await uproxyInside(['up', '--runtime', 'qemu', '--backends', '2', '--accel', 'tcg']);
    expect(two.exitCode, two.all).toBe(0);
    const shrunk = machinePids();
    expect(Object.keys(shrunk).sort()).toEqual(['backend-1', 'backend-2', 'proxy']);
    for (const name of ['backend-1', 'backend-2', 'proxy']) expect(shrunk[name], name).toBe(scaled[name]);
    expect(qemuProcessesOf(dir).sort()).toEqual(Object.values(shrunk).sort());
    // The taps of the removed machines went with them: bridge, 3 taps, and the test's veth.
    expect(linksOf(inner)).toHaveLength(['lo', 'upq-veth-in', 'uproxy0'].length + 3);
    const narrow = await requests(inner, PROXY, 20);
    expect(narrow.statuses).toEqual({ 200: 20 });
    expect(Object.keys(narrow.backends).sort()).toEqual(['backend-1', 'backend-2']);
  }, 330_000);

  it('restarts backend VMs whose app changed one at a time, drained first, while a client gets only 200s', async () => {
    const before = machinePids();
    const enough = join(root, 'rolled');
    const load = requests(inner, PROXY, 100_000, token, 5000, enough);
    const source = join(dir, 'backend/src/server.c');
    writeFileSync(source, readFileSync(source, 'utf8').replace('<h1>Hello from %s</h1>', '<h1>Hello from %s, rebuilt</h1>'));
    const up = await uproxyInside(['up', '--runtime', 'qemu', '--accel', 'tcg']);
    writeFileSync(enough, '');
    const during = await load;
    expect(up.exitCode, up.all).toBe(0);
    for (const name of ['backend-1', 'backend-2']) expect(up.all).toContain(`restart ${name} (changed), drained first`);
    const after = machinePids();
    for (const name of ['backend-1', 'backend-2']) expect(after[name], name).not.toBe(before[name]);
    expect(after.proxy).toBe(before.proxy);
    expect(during.errors).toEqual([]);
    expect(Object.keys(during.statuses)).toEqual(['200']);
    expect(during.statuses[200]).toBeGreaterThan(20);
  }, 330_000);

  it('renews a proxy certificate that is due through the admin API, sending only the chain: same key, same proxy VM', async () => {
    const before = machinePids();
    const servedSerial = async (): Promise<string> => {
      const got = await execa('ip', ['netns', 'exec', inner, 'sh', '-c',
        'openssl s_client -connect 172.44.0.2:8080 -servername 172.44.0.2 </dev/null 2>/dev/null | openssl x509 -noout -serial'], { reject: false });
      return got.stdout.trim();
    };
    const pemFile = join(dir, '.uproxy/tls/proxy.pem');
    const key = privateKey(readFileSync(pemFile, 'utf8'))!;
    // Issued 21 of its 30 days ago, for the same key: what the file holds three weeks on.
    const { ca } = await ensureCa(dir, 'vmfleet');
    const aged = await issueProxyCertificate(ca, proxyCertificateNames([PUBLISHED.split(':')[0]!], ['172.44.0.2']), { now: Date.now() - 21 * 86_400_000, key });
    writeFileSync(pemFile, aged, { mode: 0o600 });
    const up = await uproxyInside(['up', '--runtime', 'qemu', '--accel', 'tcg']);
    expect(up.exitCode, up.all).toBe(0);
    expect(up.stderr).toMatch(/new proxy certificate in .uproxy\/tls\/proxy.pem: a third of its lifetime or less is left/);
    expect(up.stderr).toContain('the running proxy now serves the new certificate (no restart)');
    expect(machinePids()).toEqual(before);
    const renewed = readFileSync(pemFile, 'utf8');
    expect(privateKey(renewed)).toBe(key);
    const fileSerial = execFileSync('openssl', ['x509', '-noout', '-serial'], { input: renewed, encoding: 'utf8' }).trim();
    expect(await servedSerial()).toBe(fileSerial);
    expect((await requests(inner, PROXY, 10)).statuses).toEqual({ 200: 10 });
  }, 330_000);

  it('down leaves no QEMU process, tap, bridge, nftables table or state file', async () => {
    const down = await uproxyInside(['down'], 120_000);
    expect(down.exitCode, down.all).toBe(0);
    expect(qemuProcessesOf(dir)).toEqual([]);
    expect(linksOf(inner)).toEqual(['lo', 'upq-veth-in']);
    expect(inNamespace(inner, 'nft', 'list', 'ruleset').trim()).toBe('');
    expect(existsSync(join(dir, '.uproxy/state.json'))).toBe(false);
  }, 120_000);

  it('fails up with the serial log of a backend VM that does not come up, and takes down all it started', async () => {
    const init = await uproxy(['init', 'badfleet', '--backends', '1'], root);
    expect(init.exitCode, init.stderr).toBe(0);
    const bad = join(root, 'badfleet');
    // Without a supervisor restarting it: a VM that powers off by itself is what up sees here.
    const badConfig = JSON.parse(readFileSync(join(bad, 'uproxy.json'), 'utf8'));
    writeFileSync(join(bad, 'uproxy.json'), JSON.stringify({ ...badConfig, restart: 'no' }, null, 2));
    // A backend program that exits at once, as a misconfigured one would.
    writeFileSync(join(bad, 'backend/src/server.c'), '#include <stdio.h>\nint main(void) { puts("backend: refusing to start"); return 3; }\n');
    const up = await execa('ip', ['netns', 'exec', inner, 'node', BIN, 'up', '--runtime', 'qemu', '--accel', 'tcg', '--timeout', '150'], {
      cwd: bad, reject: false, timeout: 300_000, stdin: 'ignore', all: true,
    });
    expect(up.exitCode, up.all).toBe(1);
    expect(up.stderr).toContain(`uproxy: machine backend-1 stopped right after it was started; the end of ${bad}/.uproxy/logs/backend-1.log:`);
    expect(up.stderr).toContain('backend: refusing to start');
    expect(up.stderr).toContain('uproxy-init: /uproxy/program exited with status 3');
    expect(qemuProcessesOf(bad)).toEqual([]);
    expect(linksOf(inner)).toEqual(['lo', 'upq-veth-in']);
    expect(inNamespace(inner, 'nft', 'list', 'ruleset').trim()).toBe('');
    expect(existsSync(join(bad, '.uproxy/state.json'))).toBe(false);
  }, 330_000);
});
