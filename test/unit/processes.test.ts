import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findProcessesByArgv, isOurProcess, logTail, spawnDetached, stopProcesses, waitForExit } from '../../cli/runtimes/processes.js';

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

/** A node process that ignores SIGTERM when asked to, with a marker argument that makes it unique. */
function argvFor(marker: string, ignoreTerm: boolean): string[] {
  const code = `${ignoreTerm ? "process.on('SIGTERM', () => {});" : ''} console.log('ready'); setInterval(() => {}, 1000)`;
  return [process.execPath, '-e', code, marker];
}

async function waitForOutput(file: string): Promise<void> {
  for (let i = 0; i < 200 && !readFileSync(file, 'utf8').includes('ready'); i++) await new Promise((r) => setTimeout(r, 25));
}

describe('host processes', () => {
  it('starts a detached process with its output in the log and recognises it by PID and command line', async () => {
    const argv = argvFor('uproxy-test-a', false);
    const log = join(dir, 'a.log');
    const pid = spawnDetached({ file: argv[0]!, args: argv.slice(1) }, log, dir);
    started.push(pid);
    await waitForOutput(log);
    expect(logTail(log)).toEqual(['ready']);
    expect(isOurProcess(pid, argv)).toBe(true);
    expect(isOurProcess(pid, [...argv.slice(0, -1), 'uproxy-test-other'])).toBe(false);
    expect(findProcessesByArgv([argv])).toEqual([pid]);
    await stopProcesses([{ pid, argv }], 5000);
    expect(isOurProcess(pid, argv)).toBe(false);
  });

  it('kills with SIGKILL what ignores SIGTERM, after the grace period', async () => {
    const argv = argvFor('uproxy-test-b', true);
    const log = join(dir, 'b.log');
    const pid = spawnDetached({ file: argv[0]!, args: argv.slice(1) }, log, dir);
    started.push(pid);
    await waitForOutput(log);
    const before = Date.now();
    await stopProcesses([{ pid, argv }], 300);
    expect(Date.now() - before).toBeGreaterThanOrEqual(300);
    expect(isOurProcess(pid, argv)).toBe(false);
  });

  it('gives up waiting for a process that does not exit, naming its PID, instead of hanging', async () => {
    const argv = argvFor('uproxy-test-stuck', false);
    const log = join(dir, 'stuck.log');
    const pid = spawnDetached({ file: argv[0]!, args: argv.slice(1) }, log, dir);
    started.push(pid);
    await waitForOutput(log);
    // Never signalled, it stands for a process stuck in the kernel after SIGKILL.
    await expect(waitForExit([pid], (p) => isOurProcess(p, argv), 300)).rejects.toThrow(
      new RegExp(`^pid ${pid} did not exit within 300 ms of SIGKILL .*uproxy down --force`),
    );
    await stopProcesses([{ pid, argv }], 5000);
    await expect(waitForExit([pid], (p) => isOurProcess(p, argv), 300)).resolves.toBeUndefined();
  });

  it('never signals a PID whose command line is not the recorded one', async () => {
    const stranger = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'uproxy-test-stranger'], { stdio: 'ignore' });
    started.push(stranger.pid!);
    await stopProcesses([{ pid: stranger.pid!, argv: argvFor('uproxy-test-c', false) }], 100);
    expect(stranger.exitCode).toBeNull();
    expect(stranger.signalCode).toBeNull();
    stranger.kill('SIGKILL');
  });
});
