import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UserError } from '../errors.js';

/**
 * Processes as uproxy sees them: found on PATH or in /proc, recognised by PID and command line
 * (QEMU's, which never changes once started; host machines are known by a mark instead, see
 * process-groups.ts), and waited for. A PID alone is not enough: after the process died, the
 * kernel may have given that number to something else.
 */

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
