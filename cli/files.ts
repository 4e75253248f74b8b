import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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

/**
 * The project's TLS files (`.uproxy/tls/`, git-ignored with the rest of `.uproxy/`): the local
 * CA's certificate (what clients trust) and key, and the PEM file the proxy is started with
 * (chain + key). Here so the pure plan can name the proxy's file without loading the CA code.
 */
export function tlsPaths(projectDir: string): { dir: string; caCert: string; caKey: string; proxy: string } {
  const dir = join(stateDir(projectDir), 'tls');
  return { dir, caCert: join(dir, 'ca.pem'), caKey: join(dir, 'ca.key'), proxy: join(dir, 'proxy.pem') };
}

/**
 * The project's ACME files (`.uproxy/acme/`, mode 0700; `down` never removes them): one account
 * key per CA directory (mode 0600) and `state.json`, what uproxy knows of the certificate in
 * `.uproxy/tls/proxy.pem` and of its last failed attempt. The certificate itself is the proxy's
 * file, like every other mode's.
 */
export function acmePaths(projectDir: string): { dir: string; state: string; accountKey: (directoryUrl: string) => string } {
  const dir = join(stateDir(projectDir), 'acme');
  return {
    dir,
    state: join(dir, 'state.json'),
    // Readable (the CA's host), and distinct for two directories on one host (staging, production).
    accountKey: (directoryUrl) => {
      const url = new URL(directoryUrl);
      const digest = createHash('sha256').update(directoryUrl).digest('hex').slice(0, 8);
      return join(dir, 'accounts', `${url.host.replace(/[^A-Za-z0-9.-]/g, '_')}-${digest}.key`);
    },
  };
}

/** Atomic: a reader sees the old or the new content, never half of it (`<file>.<pid>.tmp`, then a rename). */
export function writeFileAtomic(file: string, text: string | Uint8Array, mode = 0o644): void {
  mkdirSync(join(file, '..'), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w', mode);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}

/** A text file's content, or null when it does not exist (other errors are thrown). */
export function readIfExists(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
