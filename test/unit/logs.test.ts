import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { logFile, logSources, printLogs, type LogsOptions } from '../../cli/core/logs.js';
import { LogFile } from '../../cli/logs/files.js';
import { colorWanted, lineFormatter } from '../../cli/logs/format.js';
import { LineClock, lineTime, mergeByTime, type LogLine } from '../../cli/logs/lines.js';
import { parseSince } from '../../cli/logs/since.js';

const dir = mkdtempSync(join(tmpdir(), 'uproxy-logs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.parse('2026-01-31T09:00:00.000Z');
const at = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString();

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { stream, text: () => text };
}

describe('--since', () => {
  const now = T0;
  it('takes durations back from now, alone or combined', () => {
    expect(parseSince('10m', now)).toBe(now - 600_000);
    expect(parseSince('1h30m', now)).toBe(now - 5_400_000);
    expect(parseSince('1.5h', now)).toBe(now - 5_400_000);
    expect(parseSince('2d', now)).toBe(now - 172_800_000);
    expect(parseSince('45s', now)).toBe(now - 45_000);
    expect(parseSince('500ms', now)).toBe(now - 500);
  });

  it('takes RFC 3339 times (a zone, an offset, fractions; none: local time), dates and Unix seconds', () => {
    expect(parseSince('2026-01-31T09:00:00Z', now)).toBe(T0);
    expect(parseSince('2026-01-31T10:30:00+01:30', now)).toBe(T0);
    expect(parseSince('2026-01-31T09:00:00.250Z', now)).toBe(T0 + 250);
    expect(parseSince('2026-01-31T09:00:00', now)).toBe(new Date(2026, 0, 31, 9, 0, 0).getTime());
    expect(parseSince('2026-01-31', now)).toBe(new Date(2026, 0, 31).getTime());
    expect(parseSince(String(T0 / 1000), now)).toBe(T0);
  });

  it('refuses anything else, naming the forms it takes', () => {
    for (const bad of ['yesterday', '10', '10x', '', '-5m', '2026-02-30T00:00:00Z', '2026-01-31T24:00:00Z', '2026-13-01']) {
      expect(() => parseSince(bad, now), bad).toThrow(/^expected a duration \(10m, 1h30m, 2d\), an RFC 3339 time \(2026-01-31T09:00:00Z; no zone: local time\) or Unix seconds, got "/);
    }
  });
});

describe('the time of a line', () => {
  it('is the RFC 3339 time the proxy, its access log and the default backend start their lines with', () => {
    expect(lineTime(`ts=${at(1)} level=info event=start`)).toBe(T0 + 1000);
    expect(lineTime(`{"time":"${at(2)}","token":"default","method":"GET"}`)).toBe(T0 + 2000);
    expect(lineTime(`${at(3)} backend backend-1 listening on 127.0.0.1:9001`)).toBe(T0 + 3000);
    expect(lineTime('2026-01-31T10:00:04+01:00 something')).toBe(T0 + 4000);
  });

  it('is absent from other lines, even with a time further in', () => {
    expect(lineTime('[    0.000000] Linux version 6.1.0')).toBeNull();
    expect(lineTime(`served at ${at(1)}`)).toBeNull();
    expect(lineTime('')).toBeNull();
  });

  it('is taken from the line before when missing; lines before any take the first one after', () => {
    const clock = new LineClock(() => 0);
    expect(clock.push('[    0.1] booting')).toEqual([]);
    expect(clock.push('[    0.2] still booting')).toEqual([]);
    expect(clock.push(`${at(5)} up`)).toEqual([
      { text: '[    0.1] booting', time: T0 + 5000 },
      { text: '[    0.2] still booting', time: T0 + 5000 },
      { text: `${at(5)} up`, time: T0 + 5000 },
    ]);
    expect(clock.push('Traceback (most recent call last):')).toEqual([{ text: 'Traceback (most recent call last):', time: T0 + 5000 }]);
  });

  it('is the fallback (the file\'s modification time) for a log with no times at all', () => {
    const clock = new LineClock(() => 0);
    clock.push('a');
    clock.push('b');
    expect(clock.flush(T0)).toEqual([
      { text: 'a', time: T0 },
      { text: 'b', time: T0 },
    ]);
  });
});

describe('interleaving', () => {
  const lines = (...times: number[]): LogLine[] => times.map((t) => ({ text: `t${t}`, time: t }));

  it('orders lines of several logs by time, equal times first from the log listed first', () => {
    const merged = [...mergeByTime([lines(1, 3, 5), lines(2, 3, 4), lines()])].map(({ source, line }) => `${source}:${line.text}`);
    expect(merged).toEqual(['0:t1', '1:t2', '0:t3', '1:t3', '1:t4', '0:t5']);
  });

  it('never moves a line before an earlier line of its own log, even when that clock stepped back', () => {
    const merged = [...mergeByTime([lines(10, 1, 2), lines(5)])].map(({ source, line }) => `${source}:${line.text}`);
    expect(merged).toEqual(['1:t5', '0:t10', '0:t1', '0:t2']);
  });

  it('prefixes names padded to one width, colors only on request, times with -t', () => {
    const render = lineFormatter(['proxy', 'backend-1'], { prefix: true, timestamps: false, color: false });
    expect(render(0, { text: 'hello', time: T0 })).toBe('proxy     | hello\n');
    expect(render(1, { text: 'hi', time: T0 })).toBe('backend-1 | hi\n');
    const colored = lineFormatter(['proxy', 'backend-1'], { prefix: true, timestamps: true, color: true });
    expect(colored(1, { text: 'hi', time: T0 })).toBe(`\x1b[33mbackend-1 |\x1b[0m ${at(0)} hi\n`);
    expect(lineFormatter(['proxy'], { prefix: false, timestamps: false, color: true })(0, { text: 'bare', time: T0 })).toBe('bare\n');
  });

  it('colors only a terminal without NO_COLOR', () => {
    const tty = Object.assign(new PassThrough(), { isTTY: true });
    expect(colorWanted(tty, true, {})).toBe(true);
    expect(colorWanted(tty, true, { NO_COLOR: '1' })).toBe(false);
    expect(colorWanted(tty, false, {})).toBe(false);
    expect(colorWanted(new PassThrough(), true, {})).toBe(false);
  });
});

describe('a log file', () => {
  it('is read once per line, a line without its newline only when complete, CRLF as LF', () => {
    const file = join(dir, 'lines.log');
    writeFileSync(file, 'one\r\ntwo\nthr');
    const log = new LogFile(file);
    expect([...log.lines()]).toEqual(['one', 'two']);
    expect(log.unfinished()).toBe('thr');
    appendFileSync(file, 'ee\nfour\n');
    expect([...log.lines()]).toEqual(['three', 'four']);
    expect([...log.lines()]).toEqual([]);
    writeFileSync(file, 'new\n'); // replaced by a shorter file: read again from its start
    expect([...log.lines()]).toEqual(['new']);
  });

  it('reads lines across chunk boundaries', () => {
    const file = join(dir, 'long.log');
    const long = ['x'.repeat(70_000), 'y'.repeat(130_000), 'z'];
    writeFileSync(file, `${long.join('\n')}\n`);
    expect([...new LogFile(file).lines()]).toEqual(long);
    expect(new LogFile(file).lastLines(2, 0, () => true)).toEqual(long.slice(1));
    expect(new LogFile(file).lastLines(5, 0, () => true)).toEqual(long);
  });

  it('gives its last lines, more before them until one has a time, and is followed after them', () => {
    const file = join(dir, 'tail.log');
    writeFileSync(file, `${at(1)} a\nb\nc\nd\npartial`);
    const log = new LogFile(file);
    const anchored = (text: string): boolean => lineTime(text) !== null;
    expect(log.lastLines(2, 10, anchored)).toEqual([`${at(1)} a`, 'b', 'c', 'd']);
    expect(log.lastLines(2, 1, anchored)).toEqual(['b', 'c', 'd']);
    appendFileSync(file, '!\n');
    expect([...log.lines()]).toEqual(['partial!']);
    const empty = new LogFile(file);
    expect(empty.lastLines(0, 0, () => true)).toEqual([]);
    expect([...empty.lines()]).toEqual([]);
    writeFileSync(join(dir, 'first-empty.log'), '\nx\n');
    expect(new LogFile(join(dir, 'first-empty.log')).lastLines(9, 0, () => false)).toEqual(['', 'x']);
  });
});

describe('uproxy logs', () => {
  const project = join(dir, 'project');
  const logs = join(project, '.uproxy', 'logs');
  mkdirSync(logs, { recursive: true });
  writeFileSync(join(logs, 'proxy.log'), `ts=${at(1)} level=info event=start\nts=${at(4)} level=info event=listen\n{"time":"${at(6)}","token":"default"}\n`);
  writeFileSync(join(logs, 'backend-1.log'), `${at(2)} backend backend-1 listening\n${at(5)} backend backend-1: poll failed\n`);
  writeFileSync(join(logs, 'backend-10.log'), `[ 0.1] boot\n${at(3)} backend backend-10 listening\n`);
  writeFileSync(join(logs, 'build-proxy.log'), 'cc -c src/main.c\n');
  const options = (over: Partial<LogsOptions> = {}): LogsOptions => ({
    names: [],
    tail: null,
    since: null,
    follow: false,
    format: { prefix: true, timestamps: false, color: true },
    ...over,
  });
  const print = async (over: Partial<LogsOptions> = {}): Promise<string[]> => {
    const out = collect();
    await printLogs(project, options(over), out.stream);
    return out.text().split('\n').slice(0, -1);
  };

  it('names the machines it knows when asked for one without a log', () => {
    expect(() => logFile(dir, 'backend-9')).toThrow(/no log for "backend-9".*not running/);
  });

  it('reads every machine log left when the fleet is down, builds only by name', () => {
    expect(logSources(project, []).map((s) => s.name)).toEqual(['backend-1', 'backend-10', 'proxy']);
    expect(logSources(project, ['build-proxy', 'proxy']).map((s) => s.name)).toEqual(['build-proxy', 'proxy']);
    expect(() => logSources(join(dir, 'nowhere'), [])).toThrow(/no machine has written a log in .*: `uproxy up` starts the fleet/);
  });

  it('interleaves every machine by time with a padded prefix, no colors off a terminal', async () => {
    expect(await print()).toEqual([
      `proxy      | ts=${at(1)} level=info event=start`,
      `backend-1  | ${at(2)} backend backend-1 listening`,
      'backend-10 | [ 0.1] boot',
      `backend-10 | ${at(3)} backend backend-10 listening`,
      `proxy      | ts=${at(4)} level=info event=listen`,
      `backend-1  | ${at(5)} backend backend-1: poll failed`,
      `proxy      | {"time":"${at(6)}","token":"default"}`,
    ]);
  });

  it('takes --tail per machine, --since, -t and --no-prefix', async () => {
    expect(await print({ tail: 1 })).toEqual([
      `backend-10 | ${at(3)} backend backend-10 listening`,
      `backend-1  | ${at(5)} backend backend-1: poll failed`,
      `proxy      | {"time":"${at(6)}","token":"default"}`,
    ]);
    expect(await print({ tail: 0 })).toEqual([]);
    expect(await print({ since: T0 + 4000, names: ['proxy', 'backend-1'] })).toEqual([
      `proxy     | ts=${at(4)} level=info event=listen`,
      `backend-1 | ${at(5)} backend backend-1: poll failed`,
      `proxy     | {"time":"${at(6)}","token":"default"}`,
    ]);
    expect(await print({ names: ['backend-10'], format: { prefix: false, timestamps: true, color: false } })).toEqual([
      `${at(3)} [ 0.1] boot`,
      `${at(3)} ${at(3)} backend backend-10 listening`,
    ]);
  });

  it('with --follow prints what is appended, by time, until stopped', async () => {
    const out = collect();
    const stop = new AbortController();
    const done = printLogs(project, options({ tail: 0, follow: true }), out.stream, stop.signal);
    appendFileSync(join(logs, 'backend-1.log'), `${at(8)} late\n`);
    appendFileSync(join(logs, 'proxy.log'), `ts=${at(7)} level=info event=early\n`);
    const deadline = Date.now() + 10_000;
    while (!out.text().includes('late') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    await done;
    expect(out.text()).toBe(`proxy      | ts=${at(7)} level=info event=early\nbackend-1  | ${at(8)} late\n`);
  });
});
