import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, uproxy } from '../cli/run.js';
import { skipUnlessCi } from '../support/prerequisites.js';

/**
 * The kraft runtime against test/kraft/bin/kraft, a STAND-IN for kraftkit's `kraft`: kraft
 * cannot be installed on the machines these tests run on. The stand-in checks every call
 * against kraft's documented flags (an unknown flag or a missing --no-prompt fails the call),
 * records it, leaves the artifacts a real build leaves and answers `ps -o json` as kraftkit
 * does. In the network-namespace test its machines are the real proxy and backend processes
 * on the planned addresses, so `up` only succeeds when the proxy really reports every backend up.
 */

const FAKE_BIN = fileURLToPath(new URL('./bin', import.meta.url));
const NETNS = `uproxy-kraft-${process.pid}`;
const netnsUsable = process.getuid?.() === 0 && (() => {
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const canUseNetns = skipUnlessCi(netnsUsable ? undefined : 'needs root and `ip netns` (iproute2) for its network namespace') === undefined;

let root: string;
/** Projects whose stand-in machines are real processes in NETNS: afterAll stops them. */
const inNetns: Project[] = [];
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-kraft-'));
});
afterAll(async () => {
  for (const project of inNetns) await stopMachines(project);
  if (canUseNetns) await execa('ip', ['netns', 'del', NETNS], { reject: false });
  rmSync(root, { recursive: true, force: true });
});

/**
 * When an assertion fails between `up` and `down`, the stand-in's detached machines would
 * outlive the test (and its namespace). `down --force` stops what uproxy knows of; then every
 * PID the stand-in recorded is killed, if it still runs that machine's binary.
 */
async function stopMachines(project: Project): Promise<void> {
  await run(project, ['down', '--force'], true);
  const file = join(project.fakeDir, 'state.json');
  if (!existsSync(file)) return;
  const { machines } = JSON.parse(readFileSync(file, 'utf8')) as { machines: { pid: number; kernel: string }[] };
  const ours = machines.filter((m) => m.pid > 0 && commandOf(m.pid) === m.kernel).map((m) => m.pid);
  for (const pid of ours) process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + 10_000;
  while (ours.some((pid) => commandOf(pid) !== undefined) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

/** argv[0] of a live (not zombie) process, or undefined. */
function commandOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return undefined;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  } catch {
    return undefined;
  }
}

interface Project {
  dir: string;
  fakeDir: string;
  env: Record<string, string>;
}

async function newProject(name: string, edit: (config: Record<string, any>) => void = () => {}): Promise<Project> {
  const init = await uproxy(['init', name, '--runtime', 'kraft', '--backends', '3'], root);
  expect(init.exitCode, init.stderr).toBe(0);
  const dir = join(root, name);
  const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
  // Inside one namespace the "machines" share a network stack: the proxy's 0.0.0.0 listener
  // must not collide with the backends' port.
  config.backends.port = 9001;
  edit(config);
  writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
  const fakeDir = join(dir, '.fake-kraft');
  mkdirSync(fakeDir);
  return { dir, fakeDir, env: { PATH: `${FAKE_BIN}${delimiter}${process.env.PATH}`, FAKE_KRAFT_DIR: fakeDir } };
}

/**
 * A running fleet as `up` would leave it, written straight into uproxy's state and the
 * stand-in's, without `up` (which needs a network namespace): machines on kraft network
 * uproxy0 (or `network`), each recorded by uproxy unless `recorded` is false.
 */
function fakeFleet(project: Project, fleet: string, machines: { name: string; pid: number; recorded?: boolean; instance?: string; network?: string }[]): void {
  const instance = (m: { name: string; instance?: string }): string => m.instance ?? `${fleet}-${m.name}`;
  writeFileSync(join(project.fakeDir, 'state.json'), JSON.stringify({
    networks: [{ name: 'uproxy0', cidr: '172.44.0.1/24' }, { name: 'other0', cidr: '172.45.0.1/24' }],
    machines: machines.map((m, i) => ({
      id: `${instance(m)}-id`, name: instance(m), kernel: '/nonexistent', args: [], mem: '24Mi', network: m.network ?? 'uproxy0',
      ip: `172.44.0.${i + 2}`, prefix: '24', pid: m.pid, state: 'running', plat: 'qemu', arch: 'x86_64',
    })),
  }));
  const { username, uid } = userInfo();
  mkdirSync(join(project.dir, '.uproxy'), { recursive: true });
  writeFileSync(join(project.dir, '.uproxy/state.json'), JSON.stringify({
    version: 1,
    fleet,
    runtime: 'kraft',
    proxy: { listen: '172.44.0.2:8080', admin: '172.44.0.2:8081' },
    machines: machines.filter((m) => m.recorded !== false).map((m, i) => ({
      name: m.name, role: m.name === 'proxy' ? 'proxy' : 'backend', address: `172.44.0.${i + 2}:8080`, pid: m.pid || null,
      command: ['kraft', 'run'], log: join(project.dir, `.uproxy/logs/${m.name}.log`), fingerprint: 'f', status: 'running',
    })),
    resources: { user: { name: username, uid }, network: { manager: 'kraft', name: 'uproxy0', owner: `uproxy:${fleet}`, created: [] } },
  }));
}

function invocations(project: Project): string[][] {
  const file = join(project.fakeDir, 'invocations.jsonl');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as string[]) : [];
}

/** `kraft <words...>` calls, reduced to their subcommand and a few telling values. */
function summary(calls: string[][]): string[] {
  return calls.map((args) => {
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    if (args[0] === 'build') return `build ${args.at(-1)!.split('/').at(-1)}`;
    if (args[0] === 'net') return `net ${args[1]} ${args.at(-1)}${args.includes('--network') ? ` ${value('--network')}` : ''}`;
    if (args[0] === 'run') return `run ${value('--name')} ${value('--network')} ${value('--memory')}`;
    return `${args[0]} ${args.filter((a) => !a.startsWith('--') && a !== 'basic').slice(1).join(' ')}`.trim();
  });
}

function run(project: Project, args: string[], netns = false) {
  const command = netns ? ['ip', ['netns', 'exec', NETNS, 'node', BIN, ...args]] as const : ['node', [BIN, ...args]] as const;
  return execa(command[0], [...command[1]], {
    cwd: project.dir,
    reject: false,
    timeout: 240_000,
    stdin: 'ignore',
    env: { ...project.env, ...(netns ? { FAKE_KRAFT_NETNS: NETNS } : {}) },
  });
}

describe('kraft runtime', () => {
  it('up --dry-run prints the kraft builds, the network and one kraft run per machine', async () => {
    const project = await newProject('dry');
    const result = await run(project, ['up', '--dry-run']);
    expect(result.exitCode, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('kraft build --no-prompt --log-type basic --plat qemu --arch x86_64'))).toHaveLength(2);
    expect(lines).toContain('kraft net create --no-prompt --log-type basic --network 172.44.0.1/24 uproxy0');
    const runs = lines.filter((l) => l.startsWith('kraft run'));
    expect(runs.map((l) => /--name (\S+)/.exec(l)?.[1])).toEqual(['dry-backend-1', 'dry-backend-2', 'dry-backend-3', 'dry-proxy']);
    expect(runs[0]).toContain('--network uproxy0:172.44.0.3/24:172.44.0.1 --memory 12Mi --plat qemu --arch x86_64');
    expect(runs[3]).toContain('--network uproxy0:172.44.0.2/24:172.44.0.1 --memory 40Mi');
    expect(runs[3]).toContain('-- --listen 0.0.0.0:8080 --admin 172.44.0.2:8081');
    expect(runs[3]).toContain('--backend backend-3=172.44.0.5:9001');
    expect(invocations(project)).toEqual([]);
  });

  it('a failing kraft build stops up with kraft\'s output, before any network or machine', async () => {
    const project = await newProject('broken');
    project.env.FAKE_KRAFT_FAIL_BUILD = 'proxy';
    const result = await run(project, ['up']);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('building proxy with kraft failed');
    expect(result.stderr).toContain('Makefile.uk:12: uproxy] Error 1');
    expect(summary(invocations(project))).toEqual(['build proxy']);
  });

  it('a missing kraft is named, with what to do instead', async () => {
    const project = await newProject('nokraft');
    project.env.PATH = '/nonexistent';
    const result = await execa(process.execPath, [BIN, 'up'], { cwd: project.dir, reject: false, env: project.env, stdin: 'ignore' });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(/kraft is not installed or not on PATH/);
  });

  it('refuses a kernel command line Unikraft cannot carry before any kraft build', async () => {
    const project = await newProject('longline', (config) => {
      // 60 tokens: the proxy's command line grows past Unikraft's 4096 bytes.
      config.proxy.tokens = Array.from({ length: 60 }, (_, i) => ({ name: `client-${i}`, sha256: 'a'.repeat(64) }));
    });
    const result = await run(project, ['up']);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(/proxy's kernel command line is \d+ bytes, over Unikraft's 4096/);
    expect(invocations(project)).toEqual([]);
  });

  it('ps reports a failing kraft ps instead of showing the machines as exited', async () => {
    const project = await newProject('blind');
    fakeFleet(project, 'blind', [{ name: 'proxy', pid: 0 }]);
    project.env.FAKE_KRAFT_FAIL_PS = '1';
    const result = await run(project, ['ps']);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('kraft ps');
    expect(result.stderr).toContain('permission denied (FAKE_KRAFT_FAIL_PS)');
    expect(result.stdout).not.toMatch(/exited/);
  });

  it('down --timeout kills a machine that does not stop in time, and removes it', async () => {
    const project = await newProject('stuck');
    // The machine's process (the VMM, for kraft) is a sleep this test owns.
    const vmm = execa('sleep', ['300'], { reject: false });
    try {
      fakeFleet(project, 'stuck', [{ name: 'proxy', pid: vmm.pid! }]);
      project.env.FAKE_KRAFT_STOP_HANGS = '1';
      const started = Date.now();
      const down = await run(project, ['down', '--timeout', '1']);
      expect(down.exitCode, down.stderr).toBe(0);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect((await vmm).signal).toBe('SIGKILL');
      expect(summary(invocations(project)).filter((s) => !s.startsWith('ps'))).toEqual(['stop stuck-proxy', 'rm stuck-proxy', 'net rm uproxy0']);
      expect(existsSync(join(project.dir, '.uproxy/state.json'))).toBe(false);
    } finally {
      vmm.kill('SIGKILL');
    }
  }, 30_000);

  it('down --force also removes this fleet\'s machines kraft lists but the state does not record', async () => {
    const project = await newProject('lost');
    fakeFleet(project, 'lost', [{ name: 'proxy', pid: 0 }, { name: 'backend-7', pid: 0, recorded: false }, { name: 'other', pid: 0, recorded: false, instance: 'elsewhere-proxy', network: 'other0' }]);
    const down = await run(project, ['down', '--force']);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(summary(invocations(project)).filter((s) => !s.startsWith('ps'))).toEqual([
      'stop lost-proxy', 'rm lost-proxy', 'stop lost-backend-7', 'rm lost-backend-7', 'net rm uproxy0',
    ]);
    const fake = JSON.parse(readFileSync(join(project.fakeDir, 'state.json'), 'utf8'));
    expect(fake.machines.map((m: { name: string }) => m.name)).toEqual(['elsewhere-proxy']);
  });

  it.skipIf(!canUseNetns)('up --backends 3 builds, makes the network, runs every machine in order; scales and rebuilds behind the same proxy; down removes them all', async () => {
    execFileSync('ip', ['netns', 'add', NETNS]);
    execFileSync('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
    const project = await newProject('fleet');
    inNetns.push(project);
    execFileSync('make', ['-C', join(project.dir, 'proxy')], { stdio: 'ignore' });

    const up = await run(project, ['up', '--backends', '3', '--timeout', '60'], true);
    expect(up.exitCode, `${up.stdout}\n${up.stderr}`).toBe(0);
    expect(summary(invocations(project)).filter((s) => !s.startsWith('ps'))).toEqual([
      'build proxy',
      'build backend',
      'net create uproxy0 172.44.0.1/24',
      'run fleet-backend-1 uproxy0:172.44.0.3/24:172.44.0.1 12Mi',
      'run fleet-backend-2 uproxy0:172.44.0.4/24:172.44.0.1 12Mi',
      'run fleet-backend-3 uproxy0:172.44.0.5/24:172.44.0.1 12Mi',
      'run fleet-proxy uproxy0:172.44.0.2/24:172.44.0.1 40Mi',
    ]);
    for (const call of invocations(project)) expect(call).toContain('--no-prompt');
    const proxyRun = invocations(project).find((c) => c[0] === 'run' && c.includes('fleet-proxy'))!;
    const programArgs = proxyRun.slice(proxyRun.indexOf('--') + 1);
    expect(programArgs).toEqual(expect.arrayContaining(['--backend', 'backend-1=172.44.0.3:9001', 'backend-3=172.44.0.5:9001']));
    const clientToken = readFileSync(join(project.dir, '.uproxy/client-token'), 'utf8').trim();
    expect(proxyRun.join(' ')).not.toContain(clientToken);

    // HTTPS, as init sets up: the key reaches the proxy only in the 0600 initrd given as --rootfs.
    const rootfs = join(project.dir, '.uproxy/kraft/proxy.cpio');
    expect(proxyRun[proxyRun.indexOf('--rootfs') + 1]).toBe(rootfs);
    expect(statSync(rootfs).mode & 0o777).toBe(0o600);
    expect(programArgs.slice(programArgs.indexOf('--tls-cert'), programArgs.indexOf('--tls-cert') + 2)).toEqual(['--tls-cert', '/uproxy/tls.pem']);
    expect(proxyRun.join(' ')).not.toContain('PRIVATE KEY');
    for (const call of invocations(project).filter((c) => c[0] === 'run' && !c.includes('fleet-proxy'))) expect(call).not.toContain('--rootfs');
    writeFileSync(join(project.dir, 'token-header'), `X-Auth-Token: ${clientToken}`, { mode: 0o600 });
    const https = await execa('ip', ['netns', 'exec', NETNS, 'curl', '-sS', '--max-time', '10', '--cacert', '.uproxy/tls/ca.pem',
      '-H', '@token-header', 'https://172.44.0.2:8080/'], { cwd: project.dir, reject: false });
    expect(https.stdout, https.stderr).toMatch(/Hello from backend-\d/);

    const state = JSON.parse(readFileSync(join(project.dir, '.uproxy/state.json'), 'utf8'));
    expect(state.runtime).toBe('kraft');
    expect(state.proxy).toEqual({ listen: '172.44.0.2:8080', admin: '172.44.0.2:8081', tls: 'local-ca' });
    expect(state.machines.map((m: { name: string; status: string }) => `${m.name}:${m.status}`)).toEqual(
      ['backend-1:running', 'backend-2:running', 'backend-3:running', 'proxy:running']);

    const again = await run(project, ['up', '--backends', '3'], true);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(invocations(project).filter((c) => c[0] === 'run')).toHaveLength(4);

    // Scaling goes through the running proxy's admin API: the proxy machine is never run again.
    const callsSince = (from: number): string[] => summary(invocations(project).slice(from)).filter((s) => !s.startsWith('ps') && !s.startsWith('build'));
    let mark = invocations(project).length;
    const four = await run(project, ['up', '--backends', '4'], true);
    expect(four.exitCode, four.stderr).toBe(0);
    expect(callsSince(mark)).toEqual(['run fleet-backend-4 uproxy0:172.44.0.6/24:172.44.0.1 12Mi']);
    mark = invocations(project).length;
    const two = await run(project, ['up', '--backends', '2'], true);
    expect(two.exitCode, two.stderr).toBe(0);
    expect(callsSince(mark)).toEqual(['stop fleet-backend-3', 'rm fleet-backend-3', 'stop fleet-backend-4', 'rm fleet-backend-4']);
    const health = async (): Promise<string[]> => {
      const ps = await run(project, ['ps', '--json'], true);
      return (JSON.parse(ps.stdout) as { machines: { name: string; health?: string }[] }).machines.map((m) => `${m.name}:${m.health}`);
    };
    expect(await health()).toEqual(['backend-1:up', 'backend-2:up', 'proxy:serving']);

    // A rebuilt backend restarts one at a time behind the same proxy, drained first.
    const source = join(project.dir, 'backend/src/server.c');
    writeFileSync(source, readFileSync(source, 'utf8').replace('<h1>Hello from %s</h1>', '<h1>Hello from %s, rebuilt</h1>'));
    mark = invocations(project).length;
    const rebuilt = await run(project, ['up'], true);
    expect(rebuilt.exitCode, rebuilt.stderr).toBe(0);
    for (const name of ['backend-1', 'backend-2']) expect(rebuilt.stderr).toContain(`restart ${name} (changed), drained first`);
    expect(callsSince(mark)).toEqual([
      'stop fleet-backend-1', 'rm fleet-backend-1', 'run fleet-backend-1 uproxy0:172.44.0.3/24:172.44.0.1 12Mi',
      'stop fleet-backend-2', 'rm fleet-backend-2', 'run fleet-backend-2 uproxy0:172.44.0.4/24:172.44.0.1 12Mi',
    ]);
    expect(await health()).toEqual(['backend-1:up', 'backend-2:up', 'proxy:serving']);

    const before = invocations(project).length;
    const down = await run(project, ['down'], true);
    expect(down.exitCode, down.stderr).toBe(0);
    // The proxy first: asked through its admin API, it drains and exits, and its machine ends by
    // itself (no `kraft stop`); only then the backends, which no connection of it holds any more.
    expect(summary(invocations(project).slice(before)).filter((s) => !s.startsWith('ps'))).toEqual([
      'rm fleet-proxy',
      'stop fleet-backend-1', 'rm fleet-backend-1',
      'stop fleet-backend-2', 'rm fleet-backend-2',
      'net rm uproxy0',
    ]);
    const fake = JSON.parse(readFileSync(join(project.fakeDir, 'state.json'), 'utf8'));
    expect(fake).toEqual({ machines: [], networks: [] });
    expect(existsSync(join(project.dir, '.uproxy/state.json'))).toBe(false);
    const links = execFileSync('ip', ['-n', NETNS, '-json', 'link', 'show'], { encoding: 'utf8' });
    expect(JSON.parse(links).map((l: { ifname: string }) => l.ifname)).toEqual(['lo']);
  }, 300_000);
});
