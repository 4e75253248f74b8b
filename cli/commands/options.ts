import { statSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { UserError } from '../errors.js';
import { findProject, requireProject } from '../config/project.js';
import { RUNTIMES, type RuntimeName } from '../config/runtimes.js';

/** Option parsers and shared lookups for the command files (kept free of heavy imports). */

export function integerIn(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

/** A timeout: any positive number of seconds (a millisecond at least, the finest the runtimes wait). */
export const seconds = secondsIn(0.001);

/** A number of seconds within [min, max]; `max` Infinity for no upper bound. */
export function secondsIn(min: number, max = Infinity): (value: string) => number {
  const range = max === Infinity ? `of at least ${min}` : `from ${min} to ${max}`;
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number of seconds ${range}, got "${value}"`);
    return n;
  };
}

export function runtime(value: string): RuntimeName {
  if (!(RUNTIMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${RUNTIMES.join(', ')}, got "${value}"`);
  return value as RuntimeName;
}

/**
 * The project directory: the nearest one holding uproxy.json, looking from the global
 * `-C DIR` (else the current directory) up to /.
 */
export function projectDir(command: Command): string {
  return requireProject(searchStart(command));
}

/** The project directory as projectDir finds it, or undefined outside any project (for doctor, which runs anywhere). */
export function projectDirIfAny(command: Command): string | undefined {
  return findProject(searchStart(command)).dir;
}

function searchStart(command: Command): string {
  const dir = (command.optsWithGlobals() as { dir?: string }).dir ?? '.';
  if (!isDirectory(dir)) throw new UserError(`-C ${dir}: no such directory`);
  return dir;
}

function isDirectory(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}
