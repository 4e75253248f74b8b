import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from './errors.js';
import { writeFileAtomic } from './files.js';
import { mergeGitignore } from './gitignore.js';

/**
 * What `init` copies into a project: `templates/` (the backend app, the proxy's Kraftfile and
 * Dockerfile, .gitignore) and this package's own `proxy/` sources and Makefile, so the
 * project builds its proxy from the code it ships with. Files are copied as they are (a
 * .gitignore already there keeps its lines and gains uproxy's);
 * `templates/shared/` goes into every app (proxy/ and backend/: both build llhttp the same
 * way), and `templates/elfloader/` replaces the native Unikraft files when that variant is chosen.
 */

/** The package root, from `dist/templates.js` or `cli/templates.ts` alike. */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** npm leaves files named `.gitignore` out of packages, so the template has no dot. */
const RENAMED: Readonly<Record<string, string>> = { gitignore: '.gitignore' };

/** Files added to the user's own copy, not put in its place (see gitignore.ts). */
const MERGED: Readonly<Record<string, (existing: string, ours: string) => string>> = { '.gitignore': mergeGitignore };

/** Build output and local files of the package's proxy/ that are no source, and its fuzz harness (package development only). */
const SKIPPED = new Set(['build', '.unikraft', 'node_modules', 'fuzz']);

export interface TemplateFile {
  /** Absolute source path. */
  from: string;
  /** Path relative to the project directory. */
  to: string;
}

export type UnikraftMode = 'native' | 'elfloader';

export interface TemplateOptions {
  /** native (default): Kraftfile + Makefile.uk; elfloader: templates/elfloader/ replaces them. */
  unikraft?: UnikraftMode;
  /** Copy llhttp's sources into proxy/llhttp/ and backend/llhttp/ so the unikernels build without network access. */
  vendorLlhttp?: boolean;
}

/** Variant trees under templates/, copied only when chosen (over the default files). */
const ELFLOADER_DIR = 'elfloader';
/** The recipe of uproxy's own sync controller image, built from this package: no project file. */
const SYNC_IMAGE_DIR = 'sync';
/** Files under templates/shared/ are written into each of these app directories. */
const SHARED_DIR = 'shared';
const APPS = ['proxy', 'backend'] as const;
/** Files of the native build that mean nothing on elfloader's prebuilt kernel. */
const NATIVE_ONLY = new Set([...APPS.flatMap((app) => [`${app}/Makefile.uk`, `${app}/llhttp.uk`]), 'proxy/openssl.uk']);

export function templateFiles(packageRoot = PACKAGE_ROOT, options: TemplateOptions = {}): TemplateFile[] {
  const templates = join(packageRoot, 'templates');
  const all = listFiles(templates).map((from) => ({ from, rel: relative(templates, from) }));
  const isVariant = (rel: string): boolean => rel.startsWith(`${ELFLOADER_DIR}/`);
  const isShared = (rel: string): boolean => rel.startsWith(`${SHARED_DIR}/`);
  let files = all.filter((f) => !isVariant(f.rel) && !f.rel.startsWith(`${SYNC_IMAGE_DIR}/`)).flatMap(({ from, rel }) =>
    isShared(rel) ? APPS.map((app) => ({ from, to: join(app, rel.slice(SHARED_DIR.length + 1)) })) : [{ from, to: RENAMED[rel] ?? rel }]);
  if (options.unikraft === 'elfloader') {
    const overlay = all.filter((f) => isVariant(f.rel)).map(({ from, rel }) => ({ from, to: rel.slice(ELFLOADER_DIR.length + 1) }));
    const replaced = new Set(overlay.map((f) => f.to));
    files = [...files.filter((f) => !replaced.has(f.to) && !NATIVE_ONLY.has(f.to)), ...overlay];
  }
  if (options.vendorLlhttp) files.push(...llhttpVendorFiles(join(templates, SHARED_DIR, LLHTTP_SUMS)));
  const proxySources = listFiles(join(packageRoot, 'proxy')).map((from) => ({ from, to: join('proxy', relative(join(packageRoot, 'proxy'), from)) }));
  const seen = new Set(files.map((f) => f.to));
  return [...files, ...proxySources.filter((f) => !seen.has(f.to))].sort((a, b) => (a.to < b.to ? -1 : 1));
}

/** llhttp's C sources and header as Debian's node-llhttp installs them. */
export const LLHTTP_LOCAL = { src: '/usr/share/llhttp', include: '/usr/share/include/llhttp' };
/** `sha256sum` lines pinning the llhttp version the Unikraft build fetches (templates/shared/). */
const LLHTTP_SUMS = 'llhttp.sha256';

/**
 * proxy/llhttp/{src,include}/ and the same in backend/, laid out as in llhttp's release
 * archive, from the local copy; refused unless every file matches the pinned digests, so the
 * offline and the fetched build compile the same parser.
 */
export function llhttpVendorFiles(sumsFile: string, local = LLHTTP_LOCAL): TemplateFile[] {
  const pinned = readFileSync(sumsFile, 'utf8')
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => {
      const [digest = '', path = ''] = line.trim().split(/\s+/);
      return { digest, path };
    });
  return pinned.flatMap(({ digest, path }) => {
    const from = join(path.startsWith('include/') ? local.include : local.src, basename(path));
    if (!existsSync(from)) {
      throw new UserError(`--vendor-llhttp: ${from} does not exist: install Debian's node-llhttp (\`apt-get install node-llhttp\`), or leave out --vendor-llhttp and let the Unikraft build fetch llhttp`);
    }
    const actual = createHash('sha256').update(readFileSync(from)).digest('hex');
    if (actual !== digest) {
      throw new UserError(`--vendor-llhttp: ${from} is not the llhttp version the templates pin (SHA-256 ${actual}, expected ${digest} from templates/${SHARED_DIR}/${LLHTTP_SUMS}); install node-llhttp 8.1.0 or copy llhttp 8.1.0's ${path} into proxy/llhttp/${path} and backend/llhttp/${path} yourself`);
    }
    return APPS.map((app) => ({ from, to: join(app, 'llhttp', path) }));
  });
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
export function renderTemplates(dir: string, force: boolean, packageRoot = PACKAGE_ROOT, options: TemplateOptions = {}): string[] {
  const files = templateFiles(packageRoot, options);
  if (!force) refuseOverwrite(dir, files.map((f) => f.to));
  for (const file of files) {
    const target = join(dir, file.to);
    const merge = MERGED[file.to];
    if (merge && existsSync(target)) {
      writeFileAtomic(target, merge(readFileSync(target, 'utf8'), readFileSync(file.from, 'utf8')), statSync(target).mode & 0o777);
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(file.from, target);
    chmodSync(target, statSync(file.from).mode & 0o777);
  }
  if (force) removeStaleProxySources(dir, files);
  return files.map((f) => f.to);
}

/**
 * proxy/src is the proxy's own code, copied whole: a C file there that this uproxy's proxy no
 * longer has (`init --force` over a project made by an older one) would be compiled and
 * linked along with the rest (every build takes src/*.c), so it goes.
 */
function removeStaleProxySources(dir: string, files: readonly TemplateFile[]): void {
  const current = new Set(files.map((f) => f.to));
  const src = join(dir, 'proxy', 'src');
  if (!existsSync(src)) return;
  for (const name of readdirSync(src)) {
    const rel = join('proxy', 'src', name);
    if (/\.[ch]$/.test(name) && !current.has(rel)) rmSync(join(dir, rel), { force: true });
  }
}

/** Refuses when any of `targets` exists in `dir`, except the files init merges into (a .gitignore). */
export function refuseOverwrite(dir: string, targets: readonly string[]): void {
  const existing = existingFiles(dir, targets.filter((to) => !(to in MERGED)));
  if (existing.length === 0) return;
  const shown = existing.slice(0, 5).join(', ') + (existing.length > 5 ? ` and ${existing.length - 5} more` : '');
  throw new UserError(`${dir} already has ${shown}: run \`uproxy init --force\` to overwrite them, or choose an empty directory`);
}
