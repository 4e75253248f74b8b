import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
// zod/mini: every `ps` with a fleet reads this file, and loading all of zod (for messages
// nobody sees here: a bad state file gets one clear error) would cost its start-up.
import * as z from 'zod/mini';
import { RUNTIMES } from '../config/runtimes.js';
import { UserError } from '../errors.js';
import { stateDir, statePath, writeFileAtomic } from '../files.js';
import { pidExists } from '../pid.js';

export { statePath };

/**
 * `.uproxy/state.json`: what a fleet's runtime has started. It is written BEFORE every side
 * effect (a machine is recorded as `starting`, with the command it is about to run, before it
 * is started), so `down` can clean up after an `up` that was killed at any point.
 */

export const machineState = z.object({
  name: z.string(),
  role: z.enum(['proxy', 'backend']),
  /** Where it serves, `host:port` (the client port for the proxy). */
  address: z.string(),
  /**
   * A proxy machine's admin API, `host:port`, where stopping it asks it to shut down: kept per
   * machine because `up` stops the old proxy after the state took the new plan's addresses.
   */
  admin: z.optional(z.string()),
  /** null until the process exists. */
  pid: z.nullable(z.int().check(z.positive())),
  /** Exactly what was run: `down --force` finds leftovers by this command line. */
  command: z.array(z.string()).check(z.minLength(1)),
  log: z.string(),
  /** Changes whenever the machine would have to be restarted (command or binary changed). */
  fingerprint: z.string(),
  status: z.enum(['starting', 'running', 'stopping']),
});
export type MachineState = z.infer<typeof machineState>;

export const fleetState = z.object({
  version: z.literal(1),
  fleet: z.string(),
  /** The list from config/runtimes.ts: reading the state must not build the whole config schema (`ps` start-up). */
  runtime: z.enum(RUNTIMES),
  /**
   * The proxy's client and admin listeners, as `host:port`, and its TLS mode when it serves
   * HTTPS (absent: plain HTTP), so `ps` prints the right URL without loading the config;
   * `serverName` is the name clients use when it is not the address (mode acme: the first domain).
   */
  proxy: z.object({ listen: z.string(), admin: z.string(), tls: z.optional(z.enum(['local-ca', 'files', 'acme'])), serverName: z.optional(z.string()) }),
  machines: z.array(machineState),
  /** Whatever else a runtime created (bridges, taps, networks), recorded by that runtime. */
  resources: z._default(z.record(z.string(), z.unknown()), {}),
});
export type FleetState = z.infer<typeof fleetState>;

export function readState(projectDir: string): FleetState | null {
  const file = statePath(projectDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new UserError(`${file} is damaged (not JSON); stop any leftover processes by hand, then delete it`);
  }
  const parsed = fleetState.safeParse(raw);
  if (!parsed.success) {
    throw new UserError(`${file} was written by another version of uproxy or is damaged; stop any leftover processes by hand, then delete it`);
  }
  return parsed.data;
}

/** Atomic: a reader sees the old or the new state, never half of one. */
export function writeState(projectDir: string, state: FleetState): void {
  writeFileAtomic(statePath(projectDir), `${JSON.stringify(state, null, 2)}\n`);
}

export function removeState(projectDir: string): void {
  rmSync(statePath(projectDir), { force: true });
}

/**
 * Runs `work` holding `.uproxy/lock`, so two `up`/`down` never race on one project. A lock
 * left by a process that no longer exists is taken over.
 */
export async function withLock<T>(projectDir: string, command: string, work: () => Promise<T>): Promise<T> {
  const file = join(stateDir(projectDir), 'lock');
  mkdirSync(stateDir(projectDir), { recursive: true });
  acquire(file, command);
  removeStaleTemporaries(projectDir);
  try {
    return await work();
  } finally {
    rmSync(file, { force: true });
  }
}

function acquire(file: string, command: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, JSON.stringify({ pid: process.pid, command }));
      closeSync(fd);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readLockHolder(file);
    if (holder && pidExists(holder.pid)) {
      throw new UserError(
        `another \`uproxy ${holder.command}\` (pid ${holder.pid}) is working on this project; wait for it to finish` +
          ` (if that process is not uproxy, delete ${file})`,
      );
    }
    rmSync(file, { force: true });
  }
  throw new UserError(`cannot take the lock ${file}: another uproxy keeps creating it; try again`);
}

/**
 * A `state.json.<pid>.tmp` whose writer is gone was left by a killed uproxy. Holding the lock,
 * no live uproxy can be writing one for this project.
 */
function removeStaleTemporaries(projectDir: string): void {
  for (const entry of readdirSync(stateDir(projectDir))) {
    const writer = /^state\.json\.(\d+)\.tmp$/.exec(entry);
    if (writer && Number(writer[1]) !== process.pid) rmSync(join(stateDir(projectDir), entry), { force: true });
  }
}

function readLockHolder(file: string): { pid: number; command: string } | null {
  try {
    const holder = JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown; command?: unknown };
    if (typeof holder.pid !== 'number') return null;
    return { pid: holder.pid, command: typeof holder.command === 'string' ? holder.command : 'up/down' };
  } catch {
    return null;
  }
}
