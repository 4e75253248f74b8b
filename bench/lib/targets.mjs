// The things wrk is pointed at: the three proxies under test and two reference points, the
// floor relay (bench/floor: the least work per request one core can do) and the direct path to
// one backend (the ceiling). Each `start` returns a running target on a free 127.0.0.1 port.
import { execa } from 'execa';
import { existsSync, mkdirSync, statSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { backendsNginxConf, haproxyConf, nginxProxyConf, uproxyArgs } from './configs.mjs';
import { freePorts, LOAD_CPU, processTree, PROXY_CPU, startPinned, stop, waitForPort } from './processes.mjs';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const RESULTS_DIR = join(REPO, 'bench', 'results');
export const UPROXY_BINARY = join(REPO, 'proxy', 'build', 'uproxy-proxy');
export const FLOOR_SOURCE = join(REPO, 'bench', 'floor', 'floor.c');
export const FLOOR_BINARY = join(REPO, 'bench', 'floor', 'build', 'floor');
export const TARGET_NAMES = ['uproxy', 'haproxy', 'nginx', 'floor', 'direct'];
// The proxies under test: the only targets the idle, callgrind and syscall extras look at.
export const PROXY_NAMES = ['uproxy', 'haproxy', 'nginx'];

export async function startBackends(workDir) {
  const dir = join(workDir, 'backends');
  mkdirSync(dir, { recursive: true });
  const ports = await freePorts(3);
  writeFileSync(join(dir, 'nginx.conf'), backendsNginxConf(dir, ports));
  const proc = startPinned('backends (nginx)', LOAD_CPU, nginxArgv(dir), { logFile: join(dir, 'stderr.log') });
  for (const port of ports) await waitForPort(port, proc);
  return { proc, ports, pids: () => processTree(proc.pid) };
}

function nginxArgv(dir) {
  return ['nginx', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
}

// `ctx` holds the work dir, the backends, the token (plaintext and SHA-256) and the run's
// certificate (ctx.tls). With `tls: true` a proxy serves its client listener over TLS with that
// certificate; the target then carries `tls` (the certificate, for clients and checks).
export const TLS_TARGET_NAMES = ['uproxy', 'haproxy', 'nginx'];

export const starters = {
  async uproxy(ctx, { wrapper = [], extraArgs = [], tls = false } = {}) {
    const [port, adminPort] = await freePorts(2);
    const argv = [
      ...wrapper,
      UPROXY_BINARY,
      ...uproxyArgs({
        port,
        adminPort,
        backendPorts: ctx.backends.ports,
        tokenSha256: ctx.tokenSha256,
        adminTokenSha256: ctx.adminTokenSha256,
        extra: [...extraArgs, ...(tls ? ['--tls-cert', ctx.tls.chain] : [])],
      }),
    ];
    const logFile = join(ctx.dir, `uproxy-${port}.log`);
    return running('uproxy', port, startPinned('uproxy', PROXY_CPU, argv, { logFile }), { adminPort, logFile, tls: tls ? ctx.tls : undefined });
  },

  async haproxy(ctx, { wrapper = [], tls = false } = {}) {
    const [port] = await freePorts(1);
    const conf = join(ctx.dir, `haproxy-${port}.cfg`);
    writeFileSync(conf, haproxyConf(port, ctx.backends.ports, ctx.token, tls ? ctx.tls : undefined), { mode: 0o600 });
    const logFile = join(ctx.dir, `haproxy-${port}.log`);
    // -db: stay in the foreground as one process, so the PID we hold is the one doing the work.
    const argv = [...wrapper, 'haproxy', '-db', '-f', conf];
    return running('haproxy', port, startPinned('haproxy', PROXY_CPU, argv, { logFile }), { logFile, tls: tls ? ctx.tls : undefined });
  },

  async nginx(ctx, { tls = false } = {}) {
    const [port] = await freePorts(1);
    const dir = join(ctx.dir, `nginx-proxy-${port}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'nginx.conf'), nginxProxyConf(dir, port, ctx.backends.ports, ctx.token, tls ? ctx.tls : undefined), { mode: 0o600 });
    const logFile = join(dir, 'stderr.log');
    return running('nginx', port, startPinned('nginx', PROXY_CPU, nginxArgv(dir), { logFile }), { logFile, tls: tls ? ctx.tls : undefined });
  },

  // Pinned like the proxies. The token goes through the environment: plaintext tokens never
  // appear on a command line.
  async floor(ctx) {
    const [port] = await freePorts(1);
    const logFile = join(ctx.dir, `floor-${port}.log`);
    const argv = [FLOOR_BINARY, String(port), ...ctx.backends.ports.map(String)];
    const proc = startPinned('floor', PROXY_CPU, argv, { logFile, env: { FLOOR_TOKEN: ctx.token } });
    return running('floor', port, proc, { logFile });
  },

  // No process of its own: wrk talks to backend 1, and "proxy CPU" does not apply.
  async direct(ctx) {
    return { name: 'direct', port: ctx.backends.ports[0], proc: undefined, pids: () => [], stop: async () => {} };
  },
};

function running(name, port, proc, details) {
  return {
    name,
    port,
    proc,
    ...details,
    pids: () => (proc.exited ? [] : processTree(proc.pid)),
    stop: () => stop(proc),
  };
}

// uproxy's proxy is being written alongside this bench: build it when its sources compile,
// and otherwise say why it is left out rather than failing the whole bench.
export async function ensureUproxyBinary() {
  const makefile = join(REPO, 'proxy', 'Makefile');
  if (existsSync(makefile)) {
    const result = await execa('make', ['-C', join(REPO, 'proxy')], { reject: false, timeout: 180000, all: true });
    if (result.exitCode !== 0) {
      const tail = (result.all ?? '').trim().split('\n').slice(-5).join('\n    ');
      return { ok: false, reason: `\`make -C proxy\` failed (exit ${result.exitCode}${result.timedOut ? ', timed out' : ''}):\n    ${tail}` };
    }
  }
  if (!existsSync(UPROXY_BINARY)) {
    return { ok: false, reason: `${UPROXY_BINARY} does not exist${existsSync(makefile) ? '' : ' and proxy/Makefile is missing'}` };
  }
  const sources = join(REPO, 'proxy', 'src');
  const newestSource = existsSync(sources)
    ? Math.max(0, ...readdirSync(sources).map((f) => statSync(join(sources, f)).mtimeMs))
    : 0;
  const stale = newestSource > statSync(UPROXY_BINARY).mtimeMs;
  return { ok: true, note: stale ? 'binary is older than proxy/src (make did not rebuild it)' : undefined };
}

// The floor relay is one C file, compiled on every run (well under a second) so it can never be
// stale; left out with the compiler's message when it does not build.
export async function buildFloorBinary() {
  mkdirSync(dirname(FLOOR_BINARY), { recursive: true });
  const argv = ['-O2', '-Wall', '-Wextra', '-Werror', '-o', FLOOR_BINARY, FLOOR_SOURCE];
  const result = await execa('cc', argv, { reject: false, timeout: 60000, all: true });
  if (result.exitCode === 0) return { ok: true };
  const tail = (result.all ?? result.message ?? '').trim().split('\n').slice(-5).join('\n    ');
  return { ok: false, reason: `\`cc ${argv.join(' ')}\` failed (exit ${result.exitCode}${result.timedOut ? ', timed out' : ''}):\n    ${tail}` };
}
