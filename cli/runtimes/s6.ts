import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { toShell, type CommandLine } from '../fleet/argv.js';
import { UserError } from '../errors.js';
import { findOnPath } from './processes.js';

/**
 * The restart policy of host machines, kept by s6 (Debian's `s6`): one `s6-supervise` per
 * machine, started in a session of its own, so it outlives the `uproxy` that started it and
 * restarts a crashed machine at once. Its service directory (`.uproxy/supervise/<name>/`)
 * holds `run`, which execs the machine, and `finish`, which decides after each exit: a clean
 * exit, the `no` policy, or a stop by uproxy ends it; anything else restarts it after an
 * exponential backoff (none after a long run), counted in `restarts`.
 *
 * Why s6 and not our own loop, runit or supervisor: s6-supervise is a small C program made for
 * exactly this (one service, its own directory, control and status through files and
 * s6-svc/s6-svstat), which a Node supervisor would re-implement at forty times its memory;
 * runit's runsv offers no readiness or "once" state and always waits a second; supervisord is
 * one Python daemon per configuration, a poor fit for per-project fleets started by a CLI.
 */

export type RestartPolicy = 'on-failure' | 'no';

export interface Service {
  /** The service directory, `.uproxy/supervise/<name>` (serviceDir). */
  dir: string;
  command: CommandLine;
  cwd: string;
  env: Readonly<Record<string, string>>;
  policy: RestartPolicy;
  /**
   * Whether exit status 0 ends the machine (the default, for a process); false for a QEMU, which
   * exits 0 when its guest powers off, i.e. when the app in it ended (uproxy's own stops are
   * not restarts either way: it releases the service first).
   */
  cleanExitEnds?: boolean;
}

/** Where a machine's service directory lives: `.uproxy/supervise/<name>`. */
export function serviceDir(stateDir: string, name: string): string {
  return join(stateDir, 'supervise', name);
}

/** The longest pause between restarts of a machine that keeps failing. */
export const MAX_BACKOFF_MS = 30_000;
/** A run this long is a success: the next failure restarts at once again. */
const STABLE_RUN_S = 10;

export const S6_MISSING = 'the restart policy runs each machine under s6-supervise: install Debian\'s s6 (`apt-get install s6`), or set "restart": "no" in uproxy.json';

/**
 * `./run`: the machine, exec'd so s6 watches it directly. It declares itself ready as it
 * starts (`notification-fd` 3, closed before the exec): s6 then restarts a machine that ran for
 * over a second without its one-second pause; whether it serves is the health check's call.
 */
export function runScript(service: Service): string {
  const exports = Object.entries(service.env).map(([key, value]) => `export ${key}=${quote(value)}\n`).join('');
  return `#!/bin/sh
# Written by uproxy on each up: edits are lost.
date +%s > started
cd ${quote(service.cwd)} || exit 111
${exports}echo >&3
exec ${toShell(service.command)} 3>&- 2>&1
`;
}

/**
 * `./finish`, run with ./run's exit code (256 when a signal ended it). Exit 125 tells s6 not to
 * restart: uproxy told it `s6-svc -O` (wanted down), the policy is `no`, or the machine ended
 * cleanly. Otherwise it counts the restart and pauses 0, then 200 ms, doubling up to
 * MAX_BACKOFF_MS while runs stay short.
 */
export function finishScript(policy: RestartPolicy, cleanExitEnds: boolean): string {
  return `#!/bin/sh
# Written by uproxy on each up: edits are lost.
[ "$(s6-svstat -o wantedup .)" = true ] || exit 125
${policy === 'no' ? 'exit 125\n' : ''}${cleanExitEnds ? '[ "$1" = 0 ] && exit 125\n' : ''}echo $(( $(cat restarts 2>/dev/null || echo 0) + 1 )) > restarts
failures=$(cat failures 2>/dev/null || echo 0)
[ $(( $(date +%s) - $(cat started 2>/dev/null || echo 0) )) -ge ${STABLE_RUN_S} ] && failures=0
echo $(( failures + 1 )) > failures
[ "$failures" = 0 ] && exit 0
ms=$(( 100 << failures ))
[ $ms -gt ${MAX_BACKOFF_MS} ] && ms=${MAX_BACKOFF_MS}
exec sleep $(( ms / 1000 )).$(( ms % 1000 / 100 ))
`;
}

/** Writes (or rewrites) the service directory; a running s6-supervise uses the new `run` from its next start. */
export function writeService(service: Service): void {
  mkdirSync(service.dir, { recursive: true, mode: 0o700 });
  const file = (name: string, text: string, mode = 0o644): void => {
    writeFileSync(join(service.dir, name), text, { mode });
    chmodSync(join(service.dir, name), mode);
  };
  file('run', runScript(service), 0o700);
  file('finish', finishScript(service.policy, service.cleanExitEnds ?? true), 0o700);
  file('notification-fd', '3\n');
  // The longest backoff plus room, or s6 would kill the finish script in the middle of its pause.
  file('timeout-finish', `${MAX_BACKOFF_MS + 5_000}\n`);
}

export function removeService(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function requireS6(): void {
  if (findOnPath('s6-supervise') === null || findOnPath('s6-svc') === null) throw new UserError(S6_MISSING);
}

export interface ServiceStatus {
  up: boolean;
  /** False once s6 was told not to restart it (a clean exit, the `no` policy, a stop). */
  wantedUp: boolean;
  pid: number | null;
  restarts: number;
}

/** What `s6-svstat` says of the service, or null when no s6-supervise watches it. */
export async function serviceStatus(dir: string): Promise<ServiceStatus | null> {
  let out: string;
  try {
    out = (await promisify(execFile)('s6-svstat', ['-o', 'up,wantedup,pid', dir], { encoding: 'utf8', timeout: 5_000 })).stdout;
  } catch {
    return null;
  }
  const [up, wantedUp, pid] = out.trim().split(/\s+/);
  let restarts = 0;
  try {
    restarts = Number(readFileSync(join(dir, 'restarts'), 'utf8').trim()) || 0;
  } catch {
    // Never restarted.
  }
  return { up: up === 'true', wantedUp: wantedUp === 'true', pid: Number(pid) > 0 ? Number(pid) : null, restarts };
}

/** How long a supervisor gets to take in `s6-svc -O` before the machine is stopped anyway. */
const RELEASE_WAIT_MS = 2_000;

/**
 * Tells s6-supervise not to restart the machine and to exit once it is down, and waits until
 * it has taken that in (s6-svc only writes to its control pipe): a machine stopped before
 * would be restarted by its finish script. The caller then stops the machine's processes
 * (process-groups.ts stopMarked), which s6 leaves down.
 */
export async function releaseService(dir: string): Promise<void> {
  try {
    await promisify(execFile)('s6-svc', ['-O', '-x', dir], { timeout: 5_000 });
  } catch {
    return; // No s6-supervise there any more: nothing to tell.
  }
  const deadline = Date.now() + RELEASE_WAIT_MS;
  while (Date.now() < deadline) {
    const status = await serviceStatus(dir);
    if (status === null || !status.wantedUp) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
