import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uproxy } from './run.js';

/**
 * Your own backend app on the host runtime (backends.command and backends.env), with the
 * launchers real apps have: a script that execs Python (the example in
 * templates/examples/python-backend), a script that starts Python as its child and waits, and
 * a Node app. Each must come up, serve through the proxy, and leave no process behind on
 * `down`, or on `down --force` once the state file is gone.
 */

const EXAMPLE = fileURLToPath(new URL('../../templates/examples/python-backend', import.meta.url));
let root: string;
let dir: string;
let token: string;
let trusting: Agent;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-own-'));
  const init = await uproxy(['init', 'own', '--backends', '2'], root);
  expect(init.exitCode, init.stderr).toBe(0);
  dir = join(root, 'own');
  cpSync(EXAMPLE, join(dir, 'python-backend'), { recursive: true });
  writeFileSync(join(dir, 'python-backend/run-child.sh'), '#!/bin/sh\n# Starts the server as a child and waits on it.\npython3 app.py &\nwait\n', { mode: 0o755 });
  writeFileSync(join(dir, 'python-backend/app.mjs'), [
    "import { createServer } from 'node:http';",
    "createServer((req, res) => res.end(req.url === '/health' ? 'ok\\n' : `<h1>Hello from ${process.env.BACKEND_NAME}</h1> (Node)\\n`))",
    '  .listen(Number(process.env.PORT), process.env.HOST);',
  ].join('\n'));
  token = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
  trusting = new Agent({ connect: { ca: readFileSync(join(dir, '.uproxy/tls/ca.pem')) } });
}, 60_000);

afterAll(async () => {
  if (dir) await uproxy(['down', '--force'], dir);
  if (root) rmSync(root, { recursive: true, force: true });
});

function configure(command: string[]): void {
  const file = join(dir, 'uproxy.json');
  const config = JSON.parse(readFileSync(file, 'utf8'));
  Object.assign(config.proxy, { port: 0, adminPort: 0 });
  config.backends = { ...config.backends, app: 'python-backend', command, env: { HOST: '{host}', PORT: '{port}', BACKEND_NAME: '{name}' } };
  writeFileSync(file, JSON.stringify(config, null, 2));
}

function state(): { proxy: { listen: string }; machines: { name: string; pid: number }[] } {
  return JSON.parse(readFileSync(join(dir, '.uproxy/state.json'), 'utf8'));
}

/** Live processes whose working directory is the app's: the servers and their launchers. */
function appProcesses(): { pid: number; argv: string }[] {
  const app = join(dir, 'python-backend');
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).flatMap((pid) => {
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) !== app) return [];
      return [{ pid: Number(pid), argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim() }];
    } catch {
      return [];
    }
  });
}

async function pages(count: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) {
    const response = await request(`https://${state().proxy.listen}/`, { dispatcher: trusting, headers: { 'x-auth-token': token }, headersTimeout: 5000, bodyTimeout: 5000 });
    expect(response.statusCode).toBe(200);
    bodies.push(await response.body.text());
  }
  return bodies;
}

describe('your own backend app on the host runtime', () => {
  it('a launcher that execs Python: up waits for it, the proxy balances over it, no token or key reaches it', { timeout: 120_000 }, async () => {
    configure(['./run.sh']);
    const up = await uproxy(['up'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(up.stderr).not.toMatch(/exited right after/);
    const seen = await pages(6);
    expect(new Set(seen.map((b) => /Hello from (backend-\d)/.exec(b)?.[1]))).toEqual(new Set(['backend-1', 'backend-2']));
    expect(seen.every((b) => b.includes('Served by Python'))).toBe(true);
    // The exec'd server is the machine's process: python, not the shell it started as.
    const listed = JSON.parse((await uproxy(['ps', '--json'], dir)).stdout) as { machines: { name: string; pid: number }[] };
    for (const m of listed.machines.filter((m) => m.name.startsWith('backend'))) {
      expect(readFileSync(`/proc/${m.pid}/cmdline`, 'utf8')).toMatch(/python3[.0-9]*\0app\.py\0/);
      const environ = readFileSync(`/proc/${m.pid}/environ`, 'utf8');
      expect(environ).toContain(`\0BACKEND_NAME=${m.name}\0`);
      expect(environ).not.toContain(token);
      expect(environ).not.toContain('PRIVATE KEY');
    }
    const ps = await uproxy(['ps'], dir);
    expect(ps.stdout).toMatch(/^backend-2\s+backend\s+\S+\s+\d+\s+0\s+running, up$/m);
  });

  it('a launcher that starts Python as a child: the launcher and the server are stopped together', { timeout: 120_000 }, async () => {
    configure(['./run-child.sh']);
    const up = await uproxy(['up'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(await pages(4)).toHaveLength(4);
    const running = appProcesses();
    expect(running.filter((p) => /python3[.0-9]* app\.py$/.test(p.argv))).toHaveLength(2);
    expect(running.filter((p) => p.argv.includes('run-child.sh'))).toHaveLength(2);
    const down = await uproxy(['down'], dir);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(appProcesses()).toEqual([]);
  });

  it('a Node app, and down --force finds every process of a fleet whose state file was deleted', { timeout: 120_000 }, async () => {
    configure(['node', 'app.mjs']);
    const up = await uproxy(['up'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    expect((await pages(4)).every((b) => b.includes('(Node)'))).toBe(true);
    const pids = state().machines.map((m) => m.pid);
    rmSync(join(dir, '.uproxy/state.json'));
    expect((await uproxy(['down'], dir)).stdout).toMatch(/Nothing to stop/);
    const forced = await uproxy(['down', '--force'], dir);
    expect(forced.exitCode, forced.stderr).toBe(0);
    for (const pid of pids) expect(existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8') !== '', String(pid)).toBe(false);
    expect(appProcesses()).toEqual([]);
  });

  it('is refused on a VM runtime, which boots a static binary', async () => {
    configure(['./run.sh']);
    const up = await uproxy(['up', '--runtime', 'qemu', '--dry-run'], dir);
    expect(up.exitCode).toBe(1);
    expect(up.stderr).toContain('backends.command in uproxy.json runs your app as a host process, but the qemu runtime boots a static binary');
  });
});
