import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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
