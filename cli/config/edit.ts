import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../files.js';
import { CONFIG_FILE } from './load.js';

/**
 * Edits of the user's uproxy.json that leave every other byte as it was. `up --backends N` remembers N as `backends.count` in uproxy.json, so a later plain `up`
 * keeps the fleet at that size; `init --tokens-only` swaps token hashes.
 */

/** Writes `backends.count` when it differs; returns whether the file changed. */
export function saveBackendsCount(projectDir: string, count: number): boolean {
  const file = join(projectDir, CONFIG_FILE);
  const text = readFileSync(file, 'utf8');
  const edited = withBackendsCount(text, count);
  if (edited === text) return false;
  writeFileAtomic(file, edited);
  return true;
}

/** The JSON text with `backends.count` set to `count`, changed in place where the key exists. */
export function withBackendsCount(text: string, count: number): string {
  const raw = JSON.parse(text) as Record<string, unknown>;
  const backends = raw.backends;
  if (backends !== null && typeof backends === 'object' && (backends as Record<string, unknown>).count === count) return text;
  const open = objectStart(text, 'backends');
  if (open !== null) {
    const value = memberValue(text, open, 'count');
    if (value !== null) return text.slice(0, value.start) + String(count) + text.slice(value.end);
    // No count yet: a new first member, indented like the line after the brace.
    const indent = /^\n([ \t]*)/.exec(text.slice(open + 1))?.[1];
    const member = indent === undefined ? `"count": ${count}, ` : `\n${indent}"count": ${count},`;
    const closesAtOnce = /^\s*\}/.test(text.slice(open + 1));
    return text.slice(0, open + 1) + (closesAtOnce ? `"count": ${count}` : member) + text.slice(open + 1);
  }
  return `${JSON.stringify({ ...raw, backends: { count } }, null, 2)}\n`;
}

/** Index of the `{` of the top-level member `key`, or null. */
function objectStart(text: string, key: string): number | null {
  let found: number | null = null;
  scan(text, 0, (depth, index, name) => {
    if (depth === 1 && name === key) {
      const brace = /^\s*:\s*\{/.exec(text.slice(index));
      if (brace) found = index + brace[0].length - 1;
      return true;
    }
    return false;
  });
  return found;
}

/** Where the number value of member `key` of the object opening at `open` starts and ends. */
function memberValue(text: string, open: number, key: string): { start: number; end: number } | null {
  let value: { start: number; end: number } | null = null;
  scan(text, open, (depth, index, name) => {
    if (depth !== 1 || name !== key) return false;
    const match = /^(\s*:\s*)(-?[\d.eE+-]+)/.exec(text.slice(index));
    if (match) value = { start: index + match[1]!.length, end: index + match[0].length };
    return true;
  });
  return value;
}

/**
 * Walks the JSON from `from` (an opening brace, or 0 for the whole document), calling `onKey`
 * for every object key with its depth relative to the start and the index just after it;
 * stops when `onKey` returns true or the starting object closes.
 */
function scan(text: string, from: number, onKey: (depth: number, index: number, name: string) => boolean): void {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0 && from !== 0) return;
    } else if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const after = end + 1;
      if (/^\s*:/.test(text.slice(after)) && onKey(depth, after, JSON.parse(text.slice(i, after)) as string)) return;
      i = end;
    }
  }
}

/**
 * The JSON text with each old SHA-256 string value replaced by its new one (for
 * `init --tokens-only`); a digest is 64 hex digits, so it cannot be mistaken for other text.
 */
export function withReplacedHashes(text: string, replacements: readonly { from: string; to: string }[]): string {
  return replacements.reduce((edited, { from, to }) => edited.split(`"${from}"`).join(`"${to}"`), text);
}
