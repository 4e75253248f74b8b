import { closeSync, openSync, readSync, statSync } from 'node:fs';

const CHUNK = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * One machine's log file, read as lines: forward from where the last read stopped (so a
 * follower sees each line once), or backward from the end for `--tail`. A line still being
 * written (no newline yet) is not consumed: the next read starts at its beginning. Memory
 * holds a chunk and the lines being returned, never the whole file.
 */
export class LogFile {
  /** The first byte not yet returned as part of a complete line. */
  private offset = 0;
  private inode = -1;

  constructor(readonly path: string) {}

  /** The file's modification time (ms), or now when it is gone. */
  modified(): number {
    return statSync(this.path, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
  }

  /**
   * The complete lines from where the last read stopped to the current end, streamed. A file
   * that shrank or was replaced is read again from its start.
   */
  *lines(): Generator<string> {
    const stat = statSync(this.path, { throwIfNoEntry: false });
    if (!stat) return;
    if (stat.ino !== this.inode || stat.size < this.offset) this.offset = 0;
    this.inode = stat.ino;
    const fd = openSync(this.path, 'r');
    try {
      const buffer = Buffer.alloc(CHUNK);
      let pieces: Buffer[] = [];
      let position = this.offset;
      for (;;) {
        const read = readSync(fd, buffer, 0, CHUNK, position);
        if (read === 0) return;
        let start = 0;
        for (let nl = buffer.indexOf(NEWLINE, 0); nl >= 0 && nl < read; nl = buffer.indexOf(NEWLINE, start)) {
          pieces.push(buffer.subarray(start, nl));
          const text = decode(Buffer.concat(pieces));
          pieces = [];
          start = nl + 1;
          this.offset = position + start;
          yield text;
        }
        if (start < read) pieces.push(Buffer.from(buffer.subarray(start, read)));
        position += read;
      }
    } finally {
      closeSync(fd);
    }
  }

  /** What follows the last complete line (a line without its newline yet), or null. */
  unfinished(): string | null {
    const size = statSync(this.path, { throwIfNoEntry: false })?.size ?? 0;
    if (size <= this.offset) return null;
    const fd = openSync(this.path, 'r');
    try {
      const buffer = Buffer.alloc(Math.min(size - this.offset, CHUNK));
      const read = readSync(fd, buffer, 0, buffer.length, this.offset);
      return read > 0 ? decode(buffer.subarray(0, read)) : null;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Complete lines at the end of the file, oldest first: at least `count` of them, and more
   * before them (up to `context`) until one satisfies `anchor` (a line with its own time, so
   * the lines after it can take theirs). Later reads continue after them.
   */
  lastLines(count: number, context: number, anchor: (line: string) => boolean): string[] {
    const stat = statSync(this.path, { throwIfNoEntry: false });
    if (!stat) return [];
    this.inode = stat.ino;
    const fd = openSync(this.path, 'r');
    try {
      const buffer = Buffer.alloc(CHUNK);
      const lines: string[] = []; // newest first
      let pieces: Buffer[] = []; // the line being assembled, its later parts first
      let end = stat.size;
      // What follows the last newline is unfinished: skipped now, read by the next lines().
      let complete = false;
      const enough = (): boolean =>
        complete && (lines.length >= count + context || (lines.length >= count && (lines.length === 0 || anchor(lines[lines.length - 1]!))));
      while (end > 0 && !enough()) {
        const start = Math.max(0, end - CHUNK);
        const read = readSync(fd, buffer, 0, end - start, start);
        let stop = read;
        for (let nl = buffer.lastIndexOf(NEWLINE, stop - 1); nl >= 0 && !enough(); nl = stop > 0 ? buffer.lastIndexOf(NEWLINE, stop - 1) : -1) {
          if (complete) {
            pieces.push(buffer.subarray(nl + 1, stop));
            lines.push(decode(Buffer.concat(pieces.reverse())));
          } else {
            this.offset = start + nl + 1;
            complete = true;
          }
          pieces = [];
          stop = nl;
        }
        if (complete && stop > 0 && !enough()) pieces.push(Buffer.from(buffer.subarray(0, stop)));
        end = start;
      }
      // The file's first line (empty when it starts with a newline).
      if (end === 0 && complete && !enough()) lines.push(decode(Buffer.concat(pieces.reverse())));
      if (!complete) this.offset = 0;
      return lines.reverse();
    } finally {
      closeSync(fd);
    }
  }
}

/** Serial consoles end lines with CRLF. */
function decode(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}
