import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { toShell } from '../fleet/argv.js';
import { makeCommand } from '../fleet/plan.js';
import { stateDir, writeFileAtomic } from '../files.js';
import type { Progress } from '../progress.js';
import { UserError } from '../errors.js';
import { logTail } from './processes.js';

/**
 * `make` for an app directory, skipped when neither its sources nor the make target changed
 * since the last successful build and the artifact is still there. "Changed" means content:
 * a hash over every file's path and bytes, so touching a file or checking it out again
 * does not rebuild, and editing one always does.
 */

/** What the build tree holds is output, not source. */
const NOT_SOURCES = new Set(['build', '.unikraft', '.git', 'node_modules']);

export function sourceHash(dir: string): string {
  const hash = createHash('sha256');
  const walk = (current: string): void => {
    const entries = readdirSync(current, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) {
        if (!(current === dir && NOT_SOURCES.has(entry.name))) walk(path);
      } else if (entry.isFile()) {
        hash.update(relative(dir, path)).update('\0').update(readFileSync(path)).update('\0');
      }
    }
  };
  walk(dir);
  return hash.digest('hex');
}

export function fileHash(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

export interface AppBuild {
  /** Shown in progress and used for the log name, e.g. `proxy`. */
  label: string;
  dir: string;
  /** The file the target produces; none for your own backend app, whose command says what runs. */
  artifact?: string;
  /** make target; the Makefile's default when absent. */
  target?: string;
}

type BuildCache = Record<string, string>;

/** Why `buildApp` would run make (`sources changed`, say), or null when it would skip it. */
function buildReason(projectDir: string, build: AppBuild, sources = sourceHash(build.dir)): string | null {
  const built = readCache(projectDir)[cacheKey(projectDir, build)];
  if (built === undefined) return 'not built yet';
  if (built !== sources) return 'sources changed';
  return build.artifact === undefined || existsSync(build.artifact) ? null : `${relative(projectDir, build.artifact)} is missing`;
}

/** The builds `buildApp` would run, each with why (for `up --dry-run`). */
export function pendingBuilds(projectDir: string, builds: readonly AppBuild[]): { build: AppBuild; reason: string }[] {
  return builds.flatMap((build) => {
    const reason = buildReason(projectDir, build);
    return reason === null ? [] : [{ build, reason }];
  });
}

/** Builds the app unless unchanged. */
export async function buildApp(projectDir: string, build: AppBuild, progress: Progress): Promise<void> {
  if (!existsSync(join(build.dir, 'Makefile'))) {
    throw new UserError(`${relative(projectDir, build.dir) || '.'}/ has no Makefile: check proxy.app / backends.app in uproxy.json`);
  }
  const sources = sourceHash(build.dir);
  const title = `build ${build.label}`;
  if (buildReason(projectDir, build, sources) === null) {
    await progress.step(`${title} (unchanged)`, async () => {});
    return;
  }
  await progress.step(title, async () => {
    const log = join(stateDir(projectDir), 'logs', `build-${build.label}.log`);
    await runMake(build, log, progress);
    if (build.artifact !== undefined && !existsSync(build.artifact)) {
      throw new UserError(`make finished in ${build.dir} but did not produce ${build.artifact}: check the Makefile's default target or the binary setting in uproxy.json`);
    }
    writeCache(projectDir, { ...readCache(projectDir), [cacheKey(projectDir, build)]: sources });
  });
}

async function runMake(build: AppBuild, log: string, progress: Progress): Promise<void> {
  const make = makeCommand(build.dir, { target: build.target });
  writeFileAtomic(log, `$ ${toShell(make)}\n`);
  // execa is loaded only when something is built: most `up` runs build nothing.
  const { execa } = await import('execa');
  const out = createWriteStream(log, { flags: 'a' });
  const child = execa(make.file, make.args, { all: true, reject: false, stdin: 'ignore', lines: false, buffer: false });
  child.all?.on('data', (chunk: Buffer) => {
    out.write(chunk);
    for (const line of chunk.toString().split('\n')) if (line.length > 0) progress.log(line);
  });
  const result = await child;
  await new Promise<void>((resolve) => out.end(resolve));
  if (result.failed) {
    const why = result.exitCode === undefined ? (result.originalMessage ?? 'it could not be started') : `exit ${result.exitCode}`;
    throw new UserError(`building ${build.label} failed (${toShell(make)}: ${why}); the end of ${log}:`, logTail(log, 20));
  }
}

function cacheKey(projectDir: string, build: AppBuild): string {
  return `${relative(projectDir, build.dir)}:${build.target ?? 'default'}`;
}

function cacheFile(projectDir: string): string {
  return join(stateDir(projectDir), 'builds.json');
}

function readCache(projectDir: string): BuildCache {
  try {
    return JSON.parse(readFileSync(cacheFile(projectDir), 'utf8')) as BuildCache;
  } catch {
    return {};
  }
}

function writeCache(projectDir: string, cache: BuildCache): void {
  writeFileAtomic(cacheFile(projectDir), `${JSON.stringify(cache, null, 2)}\n`);
}
