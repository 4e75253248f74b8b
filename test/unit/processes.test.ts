import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isProjectMark, liveMarks, machineMark, markedProcesses, markOf, spawnMachine, stopMarked } from '../../cli/runtimes/process-groups.js';
import { logTail, waitForExit } from '../../cli/runtimes/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'uproxy-proc-'));
const started: number[] = [];
afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone: the test stopped it
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A node program that prints its PID, ignoring SIGTERM when asked to. */
const SERVER = `${process.execPath} -e "${"process.argv[1] === 'stubborn' && process.on('SIGTERM', () => {}); console.log('ready ' + process.pid); setInterval(() => {}, 1000)"}"`;

async function readyPids(log: string, count: number): Promise<number[]> {
  for (let i = 0; i < 400; i++) {
    const pids = [...readFileSync(log, 'utf8').matchAll(/ready (\d+)/g)].map((m) => Number(m[1]));
    if (pids.length >= count) return pids;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${log}: ${readFileSync(log, 'utf8')}`);
}

function launcher(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

describe('host machines as marked process groups', () => {
  it('a launcher that execs its server: the server carries the mark, and stopping it ends the machine', async () => {
    const mark = machineMark(dir, 'backend-1');
    const log = join(dir, 'exec.log');
    const pid = spawnMachine({ file: launcher('exec.sh', `exec ${SERVER} quiet`), args: [] }, { log, cwd: dir, mark, env: { EXTRA: 'x' } });
    started.push(pid);
    const [server] = await readyPids(log, 1);
    expect(server).toBe(pid);
    expect(markOf(pid)).toBe(mark);
    expect(readFileSync(`/proc/${pid}/environ`, 'latin1')).toContain('\0EXTRA=x\0');
    expect(liveMarks([mark, machineMark(dir, 'backend-2')])).toEqual(new Set([mark]));
    await stopMarked([mark], 5000);
    expect(liveMarks([mark]).size).toBe(0);
    expect(logTail(log)).toEqual([`ready ${pid}`]);
  });

  it('a launcher that starts its server as a child: stopping the machine ends both', async () => {
    const mark = machineMark(dir, 'backend-2');
    const log = join(dir, 'child.log');
    const pid = spawnMachine({ file: launcher('child.sh', `${SERVER} quiet &\nwait`), args: [] }, { log, cwd: dir, mark });
    started.push(pid);
    const [server] = await readyPids(log, 1);
    started.push(server!);
    expect(server).not.toBe(pid);
    expect([...markedProcesses((m) => m === mark).keys()].sort()).toEqual([pid, server].sort());
    await stopMarked([mark], 5000);
    expect(markedProcesses((m) => m === mark).size).toBe(0);
  });

  it('kills with SIGKILL what ignores SIGTERM, after the grace period', async () => {
    const mark = machineMark(dir, 'proxy');
    const log = join(dir, 'stubborn.log');
    const pid = spawnMachine({ file: launcher('stubborn.sh', `exec ${SERVER} stubborn`), args: [] }, { log, cwd: dir, mark });
    started.push(pid);
    await readyPids(log, 1);
    const before = Date.now();
    await stopMarked([mark], 300);
    expect(Date.now() - before).toBeGreaterThanOrEqual(300);
    expect(liveMarks([mark]).size).toBe(0);
  });

  it('gives up waiting for a process that does not exit, naming its PID, instead of hanging', async () => {
    const mark = machineMark(dir, 'stuck');
    const log = join(dir, 'stuck.log');
    const pid = spawnMachine({ file: launcher('stuck.sh', `exec ${SERVER} quiet`), args: [] }, { log, cwd: dir, mark });
    started.push(pid);
    await readyPids(log, 1);
    // Never signalled, it stands for a process stuck in the kernel after SIGKILL.
    await expect(waitForExit([pid], (p) => markOf(p) === mark, 300)).rejects.toThrow(
      new RegExp(`^pid ${pid} did not exit within 300 ms of SIGKILL .*uproxy down --force`),
    );
    await stopMarked([mark], 5000);
  });

  it('never signals a process without the mark, and tells one project\'s marks from another\'s', async () => {
    const stranger = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore', env: { ...process.env, UPROXY_MACHINE: machineMark('/elsewhere', 'proxy') } });
    started.push(stranger.pid!);
    await new Promise((r) => setTimeout(r, 200));
    await stopMarked([machineMark(dir, 'proxy')], 100);
    expect(stranger.exitCode).toBeNull();
    expect(stranger.signalCode).toBeNull();
    expect(isProjectMark(machineMark(dir, 'backend-3'), dir)).toBe(true);
    expect(isProjectMark(machineMark('/elsewhere', 'proxy'), dir)).toBe(false);
    expect(isProjectMark(machineMark(`${dir}/sub`, 'proxy'), dir)).toBe(false);
    stranger.kill('SIGKILL');
  });
});
