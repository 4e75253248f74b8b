import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from './errors.js';

/**
 * What `init` copies into a project: `templates/` (the backend app, the proxy's Kraftfile and
 * Dockerfile, .gitignore) and this package's own `proxy/` sources and Makefile, so the
 * project builds its proxy from the code it ships with. Files are copied as they are.
 */

/** The package root, from `dist/templates.js` or `cli/templates.ts` alike. */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** npm leaves files named `.gitignore` out of packages, so the template has no dot. */
const RENAMED: Readonly<Record<string, string>> = { gitignore: '.gitignore' };

/** Build output and local files of the package's proxy/ that are no source. */
const SKIPPED = new Set(['build', '.unikraft', 'node_modules']);

export interface TemplateFile {
  /** Absolute source path. */
  from: string;
  /** Path relative to the project directory. */
  to: string;
}

export function templateFiles(packageRoot = PACKAGE_ROOT): TemplateFile[] {
  const files = listFiles(join(packageRoot, 'templates')).map((from) => {
    const rel = relative(join(packageRoot, 'templates'), from);
    return { from, to: RENAMED[rel] ?? rel };
  });
  const proxySources = listFiles(join(packageRoot, 'proxy')).map((from) => ({ from, to: join('proxy', relative(join(packageRoot, 'proxy'), from)) }));
  const seen = new Set(files.map((f) => f.to));
  return [...files, ...proxySources.filter((f) => !seen.has(f.to))].sort((a, b) => (a.to < b.to ? -1 : 1));
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (SKIPPED.has(entry.name)) return [];
    const path = join(dir, entry.name);
    return entry.isDirectory() ? listFiles(path) : entry.isFile() ? [path] : [];
  });
}

/** Paths (relative to `dir`) among `targets` that already exist. */
export function existingFiles(dir: string, targets: readonly string[]): string[] {
  return targets.filter((to) => existsSync(join(dir, to)));
}

/** Copies the templates into `dir`; refuses to overwrite anything unless `force`. */
export function renderTemplates(dir: string, force: boolean, packageRoot = PACKAGE_ROOT): string[] {
  const files = templateFiles(packageRoot);
  if (!force) refuseOverwrite(dir, files.map((f) => f.to));
  for (const file of files) {
    const target = join(dir, file.to);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(file.from, target);
    chmodSync(target, statSync(file.from).mode & 0o777);
  }
  return files.map((f) => f.to);
}

export function refuseOverwrite(dir: string, targets: readonly string[]): void {
  const existing = existingFiles(dir, targets);
  if (existing.length === 0) return;
  const shown = existing.slice(0, 5).join(', ') + (existing.length > 5 ? ` and ${existing.length - 5} more` : '');
  throw new UserError(`${dir} already has ${shown}: run \`uproxy init --force\` to overwrite them, or choose an empty directory`);
}
