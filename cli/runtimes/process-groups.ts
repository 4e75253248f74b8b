import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CommandLine } from '../fleet/argv.js';
import { sleep, waitForExit } from './processes.js';

/**
 * Host machines as process groups. An app may be a launcher: a script that `exec`s the real
 * program (its command line changes) or starts it as a child (the recorded PID is not the
 * server). So a machine is known by a mark in the environment of everything it runs,
 * `UPROXY_MACHINE=<name>@<project dir>`, which exec and fork both keep: the machine runs while
 * any process carries its mark, and stopping it signals its whole process group (it starts in
 * a session of its own), plus any marked process that left the group. The mark also finds a
 * fleet's processes when its state file is lost. A PID the kernel gave to something else
 * carries no mark, so a stale PID is never mistaken for the machine.
 */

export const MARK_VARIABLE = 'UPROXY_MACHINE';

export function machineMark(projectDir: string, name: string): string {
  return `${name}@${projectDir}`;
}

/** Whether `mark` belongs to a machine of the project in `projectDir`. */
export function isProjectMark(mark: string, projectDir: string): boolean {
  return mark.endsWith(`@${projectDir}`) && !mark.slice(0, -projectDir.length - 1).includes('@');
}

/**
 * Starts `command` in a session of its own (its PID is also its process group), marked, with
 * `env` added to uproxy's environment, stdout and stderr appended to `log`; returns its PID.
 */
export function spawnMachine(command: CommandLine, options: { log: string; cwd: string; mark: string; env?: Record<string, string> }): number {
  mkdirSync(dirname(options.log), { recursive: true });
  const fd = openSync(options.log, 'a', 0o600);
  try {
    const child = spawn(command.file, command.args, {
      cwd: options.cwd,
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...options.env, [MARK_VARIABLE]: options.mark },
    });
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

/** The mark of a live process, or null (none, gone, a zombie, or not ours to read). */
export function markOf(pid: number): string | null {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return null;
  }
  const prefix = `${MARK_VARIABLE}=`;
  const entry = environ.split('\0').find((e) => e.startsWith(prefix));
  return entry === undefined ? null : Buffer.from(entry.slice(prefix.length), 'latin1').toString('utf8');
}

/** Live processes whose mark `wanted` accepts, with their marks. */
export function markedProcesses(wanted: (mark: string) => boolean): Map<number, string> {
  const found = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const mark = markOf(pid);
    if (mark !== null && wanted(mark)) found.set(pid, mark);
  }
  return found;
}

/** The marks that some live process carries, of those asked for: one /proc scan for many machines. */
export function liveMarks(marks: readonly string[]): Set<string> {
  const asked = new Set(marks);
  return new Set(markedProcesses((mark) => asked.has(mark)).values());
}

/**
 * Stops every process carrying one of `marks`: SIGTERM to each one's process group (and to
 * the process itself, should it have left the group), SIGKILL to whatever is left after
 * `timeoutMs`. Resolves once none is left.
 */
export async function stopMarked(marks: readonly string[], timeoutMs: number): Promise<void> {
  const asked = new Set(marks);
  const find = (): number[] => [...markedProcesses((mark) => asked.has(mark)).keys()];
  let left = find();
  signalAll(left, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  // Checked every 20 ms: each check only reads /proc, and `down` and a restarting `up` wait on it.
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(20);
    left = find();
  }
  signalAll(left, 'SIGKILL');
  await waitForExit(left, (pid) => { const mark = markOf(pid); return mark !== null && asked.has(mark); });
}

function signalAll(pids: readonly number[], name: NodeJS.Signals): void {
  const groups = new Set(pids.map(groupOf).filter((g): g is number => g !== null && g > 1));
  for (const group of groups) send(-group, name);
  for (const pid of pids) send(pid, name);
}

/** The process group of a live process, from /proc/<pid>/stat (field 5). */
function groupOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[2]);
  } catch {
    return null;
  }
}

function send(target: number, name: NodeJS.Signals): void {
  try {
    process.kill(target, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * `down --force` without a state file: every process marked as a machine of this project is
 * stopped, however it was started. Returns how many machines there were.
 */
export async function stopLostMachines(projectDir: string, timeoutMs: number): Promise<number> {
  const marks = [...new Set(markedProcesses((mark) => isProjectMark(mark, projectDir)).values())];
  if (marks.length > 0) await stopMarked(marks, timeoutMs);
  return marks.length;
}
