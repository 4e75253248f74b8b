import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findGuestKernel } from '../../cli/runtimes/kernel.js';
import { isProjectMark, markedProcesses } from '../../cli/runtimes/process-groups.js';
import { BIN, uproxy } from '../cli/run.js';
import { addNamespace, deleteNamespace, netnsWrap, whyCannotRun } from './netns.js';
import { skipUnlessCi } from '../support/prerequisites.js';

/**
 * The restart policy on the qemu runtime (microvm guests under TCG): each QEMU runs in the
 * foreground under its own s6-supervise, which starts it again when it is killed or when its
 * guest powers off because the app in it ended. Everything runs inside a network namespace
 * this file creates and deletes.
 */

const skip = skipUnlessCi(whyCannotRun());
const ns = `upq-rs-${process.pid}`;
const CLIENT = fileURLToPath(new URL('./client.mjs', import.meta.url));
const PROXY = 'https://172.44.0.2:8080/';

let root: string;
let dir: string;
let token: string;

interface Listed { machines: { name: string; pid: number | null; restarts?: number; state: string; health?: string }[] }

function inside(args: string[], timeoutMs = 300_000) {
  return execa('ip', ['netns', 'exec', ns, 'node', BIN, ...args], { cwd: dir, reject: false, timeout: timeoutMs, stdin: 'ignore', all: true });
}

async function listed(): Promise<Listed> {
  return JSON.parse((await inside(['ps', '--json'])).stdout) as Listed;
}

async function served(count: number): Promise<Record<string, number>> {
  const [file, ...wrap] = netnsWrap(ns);
  const result = await execa(file!, [...wrap, 'node', CLIENT, PROXY, token, String(count), '5000'], { reject: false, timeout: 120_000, env: { UPROXY_TEST_CA: join(dir, '.uproxy/tls/ca.pem') } });
  expect(result.exitCode, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as { statuses: Record<string, number> }).statuses;
}

/**
 * Until the proxy serves again through the restarted backend (it first has to see the old one
 * fail its checks, then the new one pass them), for at most 90 s; then 5 requests in a row.
 */
async function servedAgain(): Promise<void> {
  const deadline = Date.now() + 90_000;
  while ((await served(1))[200] !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
  expect(await served(5)).toEqual({ 200: 5 });
}

/** Polls ps until `done` holds for the machine, for at most `ms`. */
async function until(name: string, done: (m: Listed['machines'][number]) => boolean, ms = 90_000): Promise<Listed['machines'][number]> {
  const deadline = Date.now() + ms;
  let machine = (await listed()).machines.find((m) => m.name === name)!;
  while (!done(machine) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    machine = (await listed()).machines.find((m) => m.name === name)!;
  }
  return machine;
}

describe.skipIf(skip !== undefined)(`qemu runtime: the restart policy${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    await findGuestKernel();
    addNamespace(ns);
    root = mkdtempSync(join(tmpdir(), 'uproxy-qemu-restart-'));
    const init = await uproxy(['init', 'phoenix', '--backends', '1'], root);
    expect(init.exitCode, init.stderr).toBe(0);
    dir = join(root, 'phoenix');
    // A backend app that can be told to exit (GET /exit): its VM powers off, and s6 starts it again.
    const server = join(dir, 'backend/src/server.c');
    const route = 'if (request_path_is(&c->req, "/health"))';
    writeFileSync(server, readFileSync(server, 'utf8').replace(route, `if (request_path_is(&c->req, "/exit")) exit(7);\n    else ${route}`));
    token = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
  }, 120_000);

  afterAll(async () => {
    if (dir) await inside(['down', '--force'], 120_000);
    deleteNamespace(ns);
    if (root) rmSync(root, { recursive: true, force: true });
  }, 180_000);

  it('runs each QEMU under its own supervisor, which outlives up', async () => {
    const up = await inside(['up', '--runtime', 'qemu', '--accel', 'tcg']);
    expect(up.exitCode, up.all).toBe(0);
    const machines = (await listed()).machines;
    expect(machines.map((m) => [m.name, m.restarts, m.state])).toEqual([['backend-1', 0, 'running'], ['proxy', 0, 'running']]);
    const qemu = machines.find((m) => m.name === 'backend-1')!.pid!;
    expect(readFileSync(`/proc/${qemu}/cmdline`, 'utf8')).toMatch(/^qemu-system-x86_64\0/);
    expect(readFileSync(`/proc/${qemu}/cmdline`, 'utf8')).not.toContain('-daemonize');
    expect(await served(5)).toEqual({ 200: 5 });
  }, 330_000);

  it('starts a backend VM killed with SIGKILL again, and the proxy takes it back', async () => {
    const before = (await listed()).machines.find((m) => m.name === 'backend-1')!;
    process.kill(before.pid!, 'SIGKILL');
    const after = await until('backend-1', (m) => m.pid !== null && m.pid !== before.pid);
    expect(after.restarts).toBe(1);
    await servedAgain();
  }, 180_000);

  it('starts a VM again whose app exited (the guest powered off by itself)', async () => {
    const before = (await listed()).machines.find((m) => m.name === 'backend-1')!;
    const [file, ...wrap] = netnsWrap(ns);
    await execa(file!, [...wrap, 'curl', '-s', '--max-time', '3', 'http://172.44.0.3:8080/exit'], { reject: false });
    const after = await until('backend-1', (m) => m.pid !== null && m.pid !== before.pid);
    expect(after.restarts).toBe(2);
    await servedAgain();
    expect(readFileSync(join(dir, '.uproxy/logs/backend-1.log'), 'utf8')).toContain('uproxy-init: starting');
  }, 180_000);

  it('down releases the supervisors first: no QEMU, no supervisor, no service directory is left', async () => {
    const down = await inside(['down'], 180_000);
    expect(down.exitCode, down.all).toBe(0);
    expect(markedProcesses((m) => isProjectMark(m, dir)).size).toBe(0);
    const qemus = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${dir}/`);
      } catch {
        return false;
      }
    });
    expect(qemus).toEqual([]);
    expect(execFileSync('ls', ['-A', join(dir, '.uproxy')], { encoding: 'utf8' })).not.toContain('supervise\n');
  }, 180_000);
});
