import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import type { CommandLine } from '../fleet/argv.js';
import { UserError } from '../errors.js';

/**
 * Host processes started by uproxy: detached, output to a log file, and recognised later only
 * when both the PID and the command line match what was started. A PID alone is not enough:
 * after the process died, the kernel may have given that number to something else.
 */

/** Starts `command` in its own session with stdout and stderr appended to `log`; returns its PID. */
export function spawnDetached(command: CommandLine, log: string, cwd: string): number {
  mkdirSync(dirname(log), { recursive: true });
  const fd = openSync(log, 'a', 0o600);
  try {
    const child = spawn(command.file, command.args, { cwd, detached: true, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) {
      throw new Error(`cannot start ${command.file}: the program could not be executed (is it built?)`);
    }
    child.on('error', () => {});
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** The full path of `program` as the shell would find it on PATH, or null. */
export function findOnPath(program: string, path = process.env.PATH ?? ''): string | null {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return join(dir, program);
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

/** The argv of a live process, or null when it is gone (or a zombie, whose cmdline is empty). */
export function processArgv(pid: number): string[] | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return null;
  }
  if (text.length === 0) return null;
  return text.replace(/\0$/, '').split('\0');
}

export function isOurProcess(pid: number | null, argv: readonly string[]): boolean {
  if (pid === null) return false;
  const actual = processArgv(pid);
  return actual !== null && sameArgv(actual, argv);
}

/** Live processes whose command line is exactly one of `argvs` (for `down --force`). */
export function findProcessesByArgv(argvs: readonly (readonly string[])[]): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const actual = processArgv(pid);
    if (actual && argvs.some((argv) => sameArgv(actual, argv))) found.push(pid);
  }
  return found;
}

/**
 * Exact match, or `expected` at the end of `actual`: a script started through its `#!` line
 * shows up as `interpreter [options] script args...`.
 */
function sameArgv(actual: readonly string[], expected: readonly string[]): boolean {
  const offset = actual.length - expected.length;
  return offset >= 0 && expected.every((word, i) => word === actual[offset + i]);
}

/**
 * SIGTERM to every process that is still ours, SIGKILL to whatever is left after `timeoutMs`.
 * Resolves once all are gone.
 */
export async function stopProcesses(targets: readonly { pid: number | null; argv: readonly string[] }[], timeoutMs: number): Promise<void> {
  const ours = targets.filter((t): t is { pid: number; argv: readonly string[] } => isOurProcess(t.pid, t.argv));
  for (const target of ours) signal(target.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  let alive = ours;
  // Checked every 20 ms: each check only reads /proc, and `down` and a restarting `up` wait on it.
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(20);
    alive = alive.filter((t) => isOurProcess(t.pid, t.argv));
  }
  for (const target of alive) signal(target.pid, 'SIGKILL');
  await waitForExit(alive.map((t) => t.pid), (pid) => isOurProcess(pid, alive.find((t) => t.pid === pid)!.argv));
}

/** SIGKILL cannot be ignored, but a process stuck in the kernel (state D) only dies once it gets out. */
export const EXIT_AFTER_KILL_MS = 10_000;

/**
 * Waits until no PID of `pids` is `alive` any more; after `timeoutMs`, fails with the PIDs
 * that are left instead of waiting forever.
 */
export async function waitForExit(pids: readonly number[], alive: (pid: number) => boolean, timeoutMs = EXIT_AFTER_KILL_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(alive);
  while (left.length > 0) {
    if (Date.now() >= deadline) {
      throw new UserError(
        `${left.length === 1 ? 'pid' : 'pids'} ${left.join(', ')} did not exit within ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`} of SIGKILL ` +
          `(probably stuck in the kernel: \`ps -o pid,stat,wchan -p ${left.join(',')}\` shows state D); run \`uproxy down --force\` again once ${left.length === 1 ? 'it is' : 'they are'} gone`,
      );
    }
    await sleep(20);
    left = left.filter(alive);
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The last `lines` lines of a log file ("(no output)" when empty or missing). */
export function logTail(file: string, lines = 15): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return ['(no log file)'];
  }
  const all = text.trimEnd().split('\n');
  if (all.length === 1 && all[0] === '') return ['(no output)'];
  return all.slice(-lines);
}
