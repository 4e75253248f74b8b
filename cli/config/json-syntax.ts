/**
 * Where a JSON text stops being JSON, as line and column, for error messages. Node 20's
 * JSON.parse names a character offset for some mistakes and none for others ("Unexpected
 * token '}'", "Unexpected end of JSON input"), so the offset comes from a scan of our own.
 */

export interface JsonSyntaxError {
  /** 1-based, as editors count. */
  line: number;
  column: number;
  /** What JSON.parse said, without its offset or its echo of the text. */
  reason: string;
  /** The offending line and the one before it, numbered, and a caret under the column. */
  excerpt: string[];
}

/** Locates the syntax error JSON.parse reported for `text`; undefined when the scan finds none (the text is JSON after all). */
export function locateJsonSyntaxError(text: string, parseError: Error): JsonSyntaxError | undefined {
  const offset = firstInvalidOffset(text);
  if (offset === undefined) return undefined;
  const lines = text.split('\n');
  const before = text.slice(0, offset).split('\n');
  const line = before.length;
  const column = before.at(-1)!.length + 1;
  const reason = parseError.message.replace(/ in JSON at position \d+.*$/s, '').replace(/, ".*" is not valid JSON$/s, '');
  const width = String(line).length;
  const numbered = (n: number): string => `${String(n).padStart(width)} | ${lines[n - 1]!.replace(/\r$/, '')}`;
  // The caret line keeps the tabs of the line above it, so it points at the same place.
  const caret = `${' '.repeat(width)} | ${before.at(-1)!.replace(/[^\t]/g, ' ')}^`;
  return { line, column, reason, excerpt: [...(line > 1 ? [numbered(line - 1)] : []), numbered(line), caret] };
}

class Stop {
  constructor(readonly offset: number) {}
}

/** The offset of the first character that cannot continue a JSON text (its length when the text ends too soon). */
export function firstInvalidOffset(text: string): number | undefined {
  let i = 0;
  const stop = (): never => {
    throw new Stop(i);
  };
  const skipSpace = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const take = (char: string): void => {
    if (text[i] !== char) stop();
    i++;
  };
  const string = (): void => {
    take('"');
    for (;;) {
      const char = text[i];
      if (char === undefined || char < ' ') stop();
      i++;
      if (char === '"') return;
      if (char !== '\\') continue;
      if (text[i] === 'u') {
        i++;
        for (let k = 0; k < 4; k++, i++) if (!/[0-9a-fA-F]/.test(text[i] ?? '')) stop();
      } else {
        if (text[i] === undefined || !'"\\/bfnrt'.includes(text[i]!)) stop();
        i++;
      }
    }
  };
  // Part by part, so the offset is the character JSON.parse stops at ("1." stops after the dot).
  const digits = (): void => {
    if (!/[0-9]/.test(text[i] ?? '')) stop();
    while (/[0-9]/.test(text[i] ?? '')) i++;
  };
  const number = (): void => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else digits();
    if (text[i] === '.') {
      i++;
      digits();
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      digits();
    }
  };
  const members = (close: string, member: () => void): void => {
    i++;
    skipSpace();
    if (text[i] === close) {
      i++;
      return;
    }
    for (;;) {
      skipSpace();
      member();
      skipSpace();
      if (text[i] !== ',') break;
      i++;
    }
    take(close);
  };
  const value = (): void => {
    skipSpace();
    const char = text[i];
    if (char === '{') {
      members('}', () => {
        string();
        skipSpace();
        take(':');
        value();
      });
      return;
    }
    if (char === '[') return members(']', value);
    if (char === '"') return string();
    const word = ['true', 'false', 'null'].find((w) => text.startsWith(w, i));
    if (word) {
      i += word.length;
      return;
    }
    number();
  };
  try {
    value();
    skipSpace();
    if (i < text.length) stop();
    return undefined;
  } catch (error) {
    if (error instanceof Stop) return error.offset;
    // Nesting too deep for this scan: JSON.parse's own message has to do.
    return undefined;
  }
}
