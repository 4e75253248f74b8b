import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { statePath } from '../files.js';

/** Kept free of zod: every command finds its project before it loads anything else. */
export const CONFIG_FILE = 'uproxy.json';

export interface ProjectSearch {
  /** The nearest directory that is a project, if any. */
  dir?: string;
  /** The directories looked in, from the start up. */
  looked: string[];
}

/**
 * The project `start` is in: the nearest directory, from `start` up to /, that holds
 * uproxy.json, as git and compose look for theirs. A directory whose uproxy.json is gone but
 * whose fleet still runs (.uproxy/state.json) counts too, so `down` can still stop it.
 */
export function findProject(start: string): ProjectSearch {
  const looked: string[] = [];
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    looked.push(dir);
    if (existsSync(join(dir, CONFIG_FILE)) || existsSync(statePath(dir))) return { dir, looked };
    if (dirname(dir) === dir) return { looked };
  }
}

/** The directory findProject finds from `start`, or an error that lists every place it looked. */
export function requireProject(start: string): string {
  const found = findProject(start);
  if (found.dir) return found.dir;
  throw new UserError(
    `no ${CONFIG_FILE} in ${found.looked[0]} or any directory above it: run \`uproxy init\` to create a project there, or run uproxy inside a project (or with -C DIR)`,
    ['looked for:', ...found.looked.map((dir) => `  ${join(dir, CONFIG_FILE)}`)],
  );
}
