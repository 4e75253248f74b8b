import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProjectMark, markedProcesses } from '../../cli/runtimes/process-groups.js';
import { initProject, projectClient, uproxy } from './run.js';

/**
 * The restart policy on the host runtime: each machine under its own s6-supervise (Debian's
 * s6), which outlives the `uproxy up` that started it. A proxy killed with SIGKILL comes back
 * by itself and a client that retries gets through; `down` stops the supervisors first.
 */

interface Listed { machines: { name: string; pid: number | null; restarts?: number; state: string }[]; proxy: { listen: string } }

let root: string;
let dir: string;
let token: string;
let trusting: Agent;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-restart-'));
  dir = await initProject(root, 'phoenix', 2);
  ({ token, agent: trusting } = projectClient(dir, { keepAliveTimeout: 10 }));
}, 60_000);

afterAll(async () => {
  if (dir) await uproxy(['down', '--force'], dir);
  if (root) rmSync(root, { recursive: true, force: true });
});

async function listed(): Promise<Listed> {
  const ps = await uproxy(['ps', '--json'], dir);
  return JSON.parse(ps.stdout) as Listed;
}

async function get(): Promise<number> {
  const { proxy } = await listed();
  const response = await request(`https://${proxy.listen}/`, { dispatcher: trusting, headers: { 'x-auth-token': token }, headersTimeout: 2000, bodyTimeout: 2000 });
  await response.body.dump();
  return response.statusCode;
}

describe('the restart policy (on-failure, the default)', () => {
  it('brings a proxy killed with SIGKILL back by itself, and a client that retries gets through', { timeout: 120_000 }, async () => {
    const up = await uproxy(['up'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^NAME\s+ROLE\s+ADDRESS\s+PID\s+RESTARTS\s+STATE$/m);
    const before = (await listed()).machines.find((m) => m.name === 'proxy')!;
    expect(before.restarts).toBe(0);
    const { proxy } = await listed();
    const url = `https://${proxy.listen}/`;

    process.kill(before.pid!, 'SIGKILL');
    const killed = performance.now();
    let served = 0;
    let failed = 0;
    // A client retrying every 20 ms, for at most 10 s.
    while (served === 0 && performance.now() - killed < 10_000) {
      try {
        const response = await request(url, { dispatcher: trusting, headers: { 'x-auth-token': token }, headersTimeout: 2000, bodyTimeout: 2000, reset: true });
        await response.body.dump();
        if (response.statusCode === 200) served++;
        else failed++;
      } catch {
        failed++;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const back = performance.now() - killed;
    process.stderr.write(`proxy killed with SIGKILL served again after ${back.toFixed(0)} ms (${failed} failed attempts before)\n`);
    expect(served).toBe(1);
    const after = (await listed()).machines.find((m) => m.name === 'proxy')!;
    expect(after.pid).not.toBe(before.pid);
    expect(after.restarts).toBe(1);
    expect(after.state).toBe('running');
  });

  it('restarts a backend the same way; ps shows the count; up leaves the supervised fleet alone', { timeout: 120_000 }, async () => {
    const backend = (await listed()).machines.find((m) => m.name === 'backend-2')!;
    process.kill(backend.pid!, 'SIGKILL');
    let now = backend;
    for (let i = 0; i < 200 && (now.pid === backend.pid || now.pid === null); i++) {
      await new Promise((r) => setTimeout(r, 50));
      now = (await listed()).machines.find((m) => m.name === 'backend-2')!;
    }
    expect(now.pid).not.toBe(backend.pid);
    expect(now.restarts).toBe(1);
    const ps = await uproxy(['ps'], dir);
    expect(ps.stdout).toMatch(/^backend-2\s+backend\s+\S+\s+\d+\s+1\s+running/m);
    const again = await uproxy(['up'], dir);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already up to date/);
    expect(await get()).toBe(200);
  });

  it('a proxy restarted by its supervisor keeps the tokens added and revoked since up', { timeout: 120_000 }, async () => {
    const added = await uproxy(['token', 'add', 'late'], dir);
    expect(added.exitCode, added.stderr).toBe(0);
    const late = /^ {2}(\S+)$/m.exec(added.stdout)![1]!;
    expect((await uproxy(['token', 'revoke', 'default'], dir)).exitCode).toBe(0);
    const status = async (value: string): Promise<number> => {
      const { proxy } = await listed();
      const response = await request(`https://${proxy.listen}/`, { dispatcher: trusting, headers: { 'x-auth-token': value }, headersTimeout: 2000, bodyTimeout: 2000, reset: true });
      await response.body.dump();
      return response.statusCode;
    };
    expect(await status(late)).toBe(200);
    expect(await status(token)).toBe(401);
    const before = (await listed()).machines.find((m) => m.name === 'proxy')!;
    process.kill(before.pid!, 'SIGKILL');
    let now = before;
    for (let i = 0; i < 200 && (now.pid === before.pid || now.state !== 'running'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      now = (await listed()).machines.find((m) => m.name === 'proxy')!;
    }
    let back = 0;
    for (let i = 0; i < 100 && back !== 200; i++) back = await status(late).catch(() => 0);
    expect(back).toBe(200);
    expect(await status(token)).toBe(401);
  });

  it('down stops supervisors and machines alike: no process of the fleet is left', { timeout: 120_000 }, async () => {
    expect(markedProcesses((m) => isProjectMark(m, dir)).size).toBeGreaterThanOrEqual(6);
    const down = await uproxy(['down'], dir);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(markedProcesses((m) => isProjectMark(m, dir)).size).toBe(0);
  });
});

describe('down --force', () => {
  it('also stops a process of this project that the state file does not record', { timeout: 120_000 }, async () => {
    expect((await uproxy(['up'], dir)).exitCode).toBe(0);
    // What a lost restart or a crashed up can leave behind: a marked process nobody recorded.
    const stray = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore', env: { ...process.env, UPROXY_MACHINE: `backend-9@${dir}` } });
    stray.unref();
    await new Promise((r) => setTimeout(r, 300));
    expect([...markedProcesses((m) => isProjectMark(m, dir)).keys()]).toContain(stray.pid);
    const down = await uproxy(['down', '--force'], dir);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(markedProcesses((m) => isProjectMark(m, dir)).size).toBe(0);
  });
});

describe('the restart policy "no"', () => {
  it('leaves a killed machine down until the next up, which starts it again', { timeout: 120_000 }, async () => {
    const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
    config.restart = 'no';
    writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
    expect((await uproxy(['up'], dir)).exitCode).toBe(0);
    const backend = (await listed()).machines.find((m) => m.name === 'backend-1')!;
    expect(backend.restarts).toBeUndefined();
    process.kill(backend.pid!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    expect((await listed()).machines.find((m) => m.name === 'backend-1')!.state).toBe('exited');
    const up = await uproxy(['up'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    expect((await listed()).machines.find((m) => m.name === 'backend-1')!.state).toBe('running');
  });
});

describe('a machine that crashes as it starts, under the restart policy', () => {
  it('fails up with its log instead of waiting while the supervisor restarts it, and leaves nothing running', { timeout: 120_000 }, async () => {
    const crashy = await initProject(root, 'crashy', 1, (config) => {
      config.backends = { ...config.backends, command: ['sh', '-c', 'echo "backend: refusing to start"; exit 3'] };
    });
    try {
      const up = await uproxy(['up', '--timeout', '90'], crashy);
      expect(up.exitCode).toBe(1);
      expect(up.stderr).toContain('machine backend-1 stopped right after it was started');
      expect(up.stderr).toContain('backend: refusing to start');
      expect(up.stderr).not.toMatch(/did not become healthy/);
      expect(markedProcesses((m) => isProjectMark(m, crashy)).size).toBe(0);
    } finally {
      await uproxy(['down', '--force'], crashy);
    }
  });
});
