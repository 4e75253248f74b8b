import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { UserError } from '../errors.js';
import { readIfExists, writeFileAtomic } from '../files.js';
import { mergeGitignore } from '../gitignore.js';
import type { ManifestFile } from './manifests.js';

/**
 * The export's YAML files in their directory. Each starts with MARKER, which is how a later
 * export knows a file as its own: those it overwrites, and removes when it no longer writes
 * them (a proxy-secret.yaml after TLS was turned off, which `kubectl apply -f DIR` would
 * otherwise still apply); any other file in its way is left alone unless --force.
 */

export const MARKER = '# Written by `uproxy export kubernetes`';

/** A file's YAML: one document per object, after the marker. */
export function manifestText(file: ManifestFile): string {
  const header = [`${MARKER} from uproxy.json: export again rather than edit it.`];
  if (file.secret !== null) header.push(`# It holds ${file.secret}: mode 0600, git-ignored by the .gitignore beside it.`);
  // YAML 1.1, as kubectl reads it: strings such as "on" or "yes" are quoted, not taken for booleans.
  const documents = file.objects.map((object) => stringify(object, { version: '1.1', lineWidth: 0 }));
  return `${header.join('\n')}\n---\n${documents.join('---\n')}`;
}

export interface WriteResult {
  written: string[];
  /** Files an earlier export wrote that this one does not. */
  removed: string[];
}

export function writeManifests(dir: string, files: readonly ManifestFile[], options: { force: boolean }): WriteResult {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UserError(`${dir} is a file, not a directory: choose another one with -o DIR`);
  const foreign = options.force ? [] : files.map((f) => join(dir, f.name)).filter((path) => !ours(readIfExists(path)));
  if (foreign.length > 0) {
    const [these, them] = foreign.length === 1 ? ['exists and was', 'it'] : ['exist and were', 'them'];
    throw new UserError(
      `${foreign.join(', ')} ${these} not written by \`uproxy export kubernetes\`: move ${them} away, export to another directory (-o DIR), or overwrite ${them} with --force`,
    );
  }
  const written = files.map((file) => {
    const path = join(dir, file.name);
    writeFileAtomic(path, manifestText(file), file.secret === null ? 0o644 : 0o600);
    return path;
  });
  const names = new Set(files.map((f) => f.name));
  const removed = readdirSync(dir)
    .filter((name) => name.endsWith('.yaml') && !names.has(name) && ours(readIfExists(join(dir, name))))
    .map((name) => join(dir, name));
  for (const path of removed) rmSync(path);
  ignoreSecrets(dir, files.filter((f) => f.secret !== null).map((f) => f.name));
  return { written, removed };
}

/** A file that is missing, or that an export wrote. */
function ours(text: string | null): boolean {
  return text === null || text.startsWith(MARKER);
}

/** Adds the secret files to DIR/.gitignore (made, or added to, keeping your lines), so committing DIR never commits a key. */
function ignoreSecrets(dir: string, secretFiles: readonly string[]): void {
  const file = join(dir, '.gitignore');
  const existing = readIfExists(file) ?? '';
  const merged = mergeGitignore(existing, ['# uproxy export kubernetes: Secrets (the proxy\'s key, the admin token)', ...secretFiles].join('\n'));
  if (merged !== existing) writeFileAtomic(file, merged);
}
