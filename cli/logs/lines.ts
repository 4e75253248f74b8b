/**
 * The time of each log line, and the interleaving of several logs by it. Pure: no files.
 *
 * Times come from the lines themselves, because the machines write their logs directly (a
 * process's stdout, a VM's serial console), with no collector in between to stamp them. The
 * proxy starts every line with `ts=<RFC 3339>` (its access log with `{"time":"<RFC 3339>"`),
 * the default backend with the bare time; a line without one (a guest kernel's console, an
 * app of your own) takes the time of the line before it in the same log, so it stays where it
 * was written.
 */

export interface LogLine {
  text: string;
  /** Milliseconds since the epoch: the line's own time, or the one it took (see LineClock). */
  time: number;
}

const LEADING_TIME = /^(?:ts=|\{"time":")?(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2}))/;

/** The RFC 3339 time a line starts with (bare, after `ts=`, or as a leading JSON `"time"`), else null. */
export function lineTime(text: string): number | null {
  const match = LEADING_TIME.exec(text);
  if (!match) return null;
  const ms = Date.parse(match[1]!.replace(' ', 'T'));
  return Number.isFinite(ms) ? ms : null;
}

/** Leading lines without a time wait this long for one before they take the fallback time. */
const MAX_WAITING = 10_000;

/**
 * Gives the lines of one log, in order, their times. A line without its own takes the time of
 * the last line that had one; lines before any such line take the time of the first one after
 * them (a VM's boot console belongs just before the first line of its program), or `flush`'s
 * time when none comes.
 */
export class LineClock {
  private last: number | null = null;
  private waiting: string[] = [];

  constructor(private readonly fallback: () => number) {}

  /** The lines whose time is known now, in order. */
  push(text: string): LogLine[] {
    const own = lineTime(text);
    if (own !== null) {
      this.last = own;
      const lines = this.waiting.map((waiting) => ({ text: waiting, time: own }));
      this.waiting = [];
      lines.push({ text, time: own });
      return lines;
    }
    if (this.last !== null) return [{ text, time: this.last }];
    this.waiting.push(text);
    return this.waiting.length > MAX_WAITING ? this.flush(this.fallback()) : [];
  }

  /** Lines still waiting for a time take `time`. */
  flush(time: number): LogLine[] {
    const lines = this.waiting.map((text) => ({ text, time }));
    this.waiting = [];
    return lines;
  }
}

/**
 * Interleaves logs by time, like `docker compose logs`: each log keeps its own order (a line
 * never moves before an earlier line of its machine, even when that machine's clock stepped
 * back), and equal times go to the log listed first.
 */
export function* mergeByTime<T extends LogLine>(sources: readonly Iterable<T>[]): Generator<{ source: number; line: T }> {
  const iterators = sources.map((source) => source[Symbol.iterator]());
  const heads = iterators.map((iterator) => iterator.next());
  for (;;) {
    let next = -1;
    heads.forEach((head, i) => {
      if (!head.done && (next < 0 || head.value.time < (heads[next]!.value as T).time)) next = i;
    });
    if (next < 0) return;
    yield { source: next, line: heads[next]!.value as T };
    heads[next] = iterators[next]!.next();
  }
}
