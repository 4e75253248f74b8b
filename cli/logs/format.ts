import type { LogLine } from './lines.js';

export interface LineFormat {
  /** `name | ` before each line, names padded to one width (docker compose's layout). */
  prefix: boolean;
  /** The line's time (its own, or the one it took) before it, as `docker compose logs -t` does. */
  timestamps: boolean;
  /** Each machine's prefix in its own color. */
  color: boolean;
}

// docker compose's rotation: cyan, yellow, green, magenta, blue, then their bright variants.
const COLORS = [36, 33, 32, 35, 34, 96, 93, 92, 95, 94];

/** Colors only where a person reads them: a terminal, without NO_COLOR (no-color.org). */
export function colorWanted(out: NodeJS.WritableStream, allowed: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return allowed && (out as { isTTY?: boolean }).isTTY === true && !env.NO_COLOR;
}

/** Renders lines of the given machines; `source` indexes `names`. */
export function lineFormatter(names: readonly string[], format: LineFormat): (source: number, line: LogLine) => string {
  const width = Math.max(0, ...names.map((name) => name.length));
  const prefixes = names.map((name, i) => {
    if (!format.prefix) return '';
    const text = `${name.padEnd(width)} |`;
    return `${format.color ? `\x1b[${COLORS[i % COLORS.length]}m${text}\x1b[0m` : text} `;
  });
  return (source, line) => `${prefixes[source]}${format.timestamps ? `${new Date(line.time).toISOString()} ` : ''}${line.text}\n`;
}
