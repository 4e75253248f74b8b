import { once } from 'node:events';
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stateDir } from '../files.js';
import { readState } from '../fleet/state.js';
import { UserError } from '../errors.js';
import { LogFile } from '../logs/files.js';
import { colorWanted, lineFormatter, type LineFormat } from '../logs/format.js';
import { LineClock, lineTime, mergeByTime, type LogLine } from '../logs/lines.js';

export interface LogsOptions {
  /** Machines (or builds: build-proxy, build-backend); none: every machine of the fleet. */
  names: readonly string[];
  /** The last lines of each log; null: all of them. */
  tail: number | null;
  /** Only lines from this time on (ms since the epoch); null: all. */
  since: number | null;
  follow: boolean;
  format: LineFormat;
}

export interface LogSource {
  name: string;
  file: string;
}

/**
 * How often a follower looks for new lines, and for new machines before each look: `up`
 * records a machine before starting it, so a new machine's first lines and what others log
 * about it (the proxy adding it) are read in the same look and merge in order.
 */
const FOLLOW_POLL_MS = 200;
/** Lines without a time of their own read before `--tail`'s window, to find the time they take. */
const TAIL_CONTEXT = 10_000;

/** The log of a machine (or of a build: `build-proxy`, `build-backend`). */
export function logFile(dir: string, name: string): string {
  const projectDir = resolve(dir);
  const recorded = readState(projectDir)?.machines.find((m) => m.name === name)?.log;
  const file = recorded ?? join(logDir(projectDir), `${name}.log`);
  try {
    statSync(file);
  } catch {
    const known = readState(projectDir)?.machines.map((m) => m.name) ?? [];
    const hint = known.length > 0 ? `machines of this fleet: ${known.join(', ')}` : 'the fleet is not running (`uproxy up` first)';
    throw new UserError(`no log for "${name}" (${file}); ${hint}`);
  }
  return file;
}

/**
 * The logs to read: the named ones, else every machine of the running fleet, else (the fleet
 * is down) every machine log left in .uproxy/logs/ — builds' logs only by name.
 */
export function logSources(dir: string, names: readonly string[]): LogSource[] {
  const projectDir = resolve(dir);
  if (names.length > 0) return [...new Set(names)].map((name) => ({ name, file: logFile(projectDir, name) }));
  const state = readState(projectDir);
  if (state) return state.machines.map((m) => ({ name: m.name, file: m.log }));
  const found = entries(logDir(projectDir))
    .filter((entry) => entry.isFile() && entry.name.endsWith('.log') && !/^(kraft-)?build-/.test(entry.name))
    .map((entry) => entry.name.slice(0, -'.log'.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (found.length === 0) throw new UserError(`no machine has written a log in ${logDir(projectDir)} yet: \`uproxy up\` starts the fleet`);
  return found.map((name) => ({ name, file: join(logDir(projectDir), `${name}.log`) }));
}

/**
 * Writes the logs to `out` interleaved by time, like `docker compose logs`: `--tail` lines of
 * each, from `--since` on; with `follow`, then what they append (and the logs of machines
 * that start meanwhile) until `signal` aborts or `out` is closed.
 */
export async function printLogs(dir: string, options: LogsOptions, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<void> {
  const projectDir = resolve(dir);
  const startedAt = Date.now();
  const readers = logSources(projectDir, options.names).map((source) => new Reader(source, options.since));
  const output = new Output(out);
  const format = { ...options.format, color: colorWanted(out, options.format.color) };
  let render = lineFormatter(readers.map((r) => r.name), format);

  const first = readers.map((reader) => reader.first(options.tail, !options.follow));
  for (const { source, line } of mergeByTime(first)) {
    if (output.closed) return;
    await output.write(render(source, line));
  }
  await output.flush();
  if (!options.follow) return;

  while (!output.closed && !signal?.aborted) {
    try {
      await sleep(FOLLOW_POLL_MS, undefined, { signal });
    } catch {
      return; // aborted
    }
    if (options.names.length === 0) {
      const known = new Set(readers.map((r) => r.name));
      const started = discover(projectDir).filter((source) => !known.has(source.name));
      // A machine started meanwhile: its log may hold earlier runs' lines, which are not news.
      readers.push(...started.map((source) => new Reader(source, Math.max(options.since ?? -Infinity, startedAt))));
      if (started.length > 0) render = lineFormatter(readers.map((r) => r.name), format);
    }
    for (const { source, line } of mergeByTime(readers.map((reader) => reader.appended()))) await output.write(render(source, line));
    await output.flush();
  }
}

function logDir(projectDir: string): string {
  return join(stateDir(projectDir), 'logs');
}

function entries(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** The fleet's machines now, when it has a state; a follower never fails for want of one. */
function discover(projectDir: string): LogSource[] {
  try {
    return readState(projectDir)?.machines.map((m) => ({ name: m.name, file: m.log })) ?? [];
  } catch {
    return [];
  }
}

/** One log being read: its file, the times its lines take, and the `--since` floor. */
class Reader {
  readonly name: string;
  private readonly file: LogFile;
  private readonly clock: LineClock;
  private readonly from: number;

  constructor(source: LogSource, since: number | null) {
    this.name = source.name;
    this.file = new LogFile(source.file);
    this.clock = new LineClock(() => this.file.modified());
    this.from = since ?? -Infinity;
  }

  /** The lines there are now (the last `tail` of them); `whole`: a last line without its newline too. */
  first(tail: number | null, whole: boolean): Iterable<LogLine> {
    if (tail === null) return this.stream(whole);
    if (tail === 0) {
      this.file.lastLines(0, 0, () => true);
      return [];
    }
    const texts = this.file.lastLines(tail, TAIL_CONTEXT, (text) => lineTime(text) !== null);
    const rest = whole ? this.file.unfinished() : null;
    if (rest !== null) texts.push(rest);
    const lines = [...texts.flatMap((text) => this.clock.push(text)), ...this.clock.flush(this.file.modified())];
    return lines.slice(-tail).filter((line) => line.time >= this.from);
  }

  /** The complete lines appended since the last read; those with no time to take get now. */
  appended(): LogLine[] {
    const lines: LogLine[] = [];
    for (const text of this.file.lines()) lines.push(...this.clock.push(text));
    lines.push(...this.clock.flush(Date.now()));
    return lines.filter((line) => line.time >= this.from);
  }

  private *stream(whole: boolean): Generator<LogLine> {
    for (const text of this.file.lines()) yield* this.clock.push(text).filter((line) => line.time >= this.from);
    const rest = whole ? this.file.unfinished() : null;
    const last = rest === null ? [] : this.clock.push(rest);
    yield* [...last, ...this.clock.flush(this.file.modified())].filter((line) => line.time >= this.from);
  }
}

/**
 * `out` in batches (one write per 64 KiB, not per line), waiting while it is full; a reader
 * that went away (`uproxy logs | head`) ends the output quietly instead of with EPIPE.
 */
class Output {
  closed = false;
  private pending = '';
  private failure: Error | null = null;

  constructor(private readonly out: NodeJS.WritableStream) {
    out.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') this.closed = true;
      else this.failure = error;
    });
  }

  async write(text: string): Promise<void> {
    this.pending += text;
    if (this.pending.length >= 64 * 1024) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.closed || this.pending === '') return;
    const full = !this.out.write(this.pending);
    this.pending = '';
    if (full) await once(this.out, 'drain').catch(() => undefined);
  }
}
