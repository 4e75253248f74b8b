import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Where a project keeps what uproxy made for it (state, logs, tokens); shared by config and fleet. */
export const STATE_DIR = '.uproxy';

export function stateDir(projectDir: string): string {
  return join(projectDir, STATE_DIR);
}

/** The fleet's state file (read and written by fleet/state.ts); here so callers can test for it without loading zod. */
export function statePath(projectDir: string): string {
  return join(stateDir(projectDir), 'state.json');
}

/** Atomic: a reader sees the old or the new content, never half of it (`<file>.<pid>.tmp`, then a rename). */
export function writeFileAtomic(file: string, text: string, mode = 0o644): void {
  mkdirSync(join(file, '..'), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}
