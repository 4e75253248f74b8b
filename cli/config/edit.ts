import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../files.js';
import { CONFIG_FILE } from './load.js';

/**
 * Edits of the user's uproxy.json that leave every other byte as it was. `up --backends N` remembers N as `backends.count` in uproxy.json, so a later plain `up`
 * keeps the fleet at that size; `init --tokens-only` swaps token hashes; `uproxy token add` and
 * `revoke` add and remove one entry of `proxy.tokens`.
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

/** The JSON text with `token` appended to `proxy.tokens`, on a line of its own indented like the entry before it. */
export function withTokenAdded(text: string, token: Readonly<Record<string, string>>): string {
  const array = tokenArray(text);
  if (!array) throw new Error('uproxy.json has no proxy.tokens array');
  const member = `{ ${Object.entries(token).map(([key, value]) => `${JSON.stringify(key)}: ${JSON.stringify(value)}`).join(', ')} }`;
  const last = array.items.at(-1);
  if (!last) return text.slice(0, array.open + 1) + member + text.slice(array.open + 1);
  const indent = /\n([ \t]*)$/.exec(text.slice(0, last.start))?.[1];
  return text.slice(0, last.end) + (indent === undefined ? `, ${member}` : `,\n${indent}${member}`) + text.slice(last.end);
}

/** The JSON text without the `proxy.tokens` entry named `name` (and the comma that joined it); unchanged when there is none. */
export function withTokenRemoved(text: string, name: string): string {
  const items = tokenArray(text)?.items ?? [];
  const at = items.findIndex((item) => (JSON.parse(text.slice(item.start, item.end)) as { name?: unknown }).name === name);
  if (at < 0) return text;
  const item = items[at]!;
  if (at > 0) return text.slice(0, items[at - 1]!.end) + text.slice(item.end);
  const next = items[1];
  return next ? text.slice(0, item.start) + text.slice(next.start) : text.slice(0, item.start) + text.slice(item.end);
}

/** Where `proxy.tokens` opens and closes, and where each of its objects starts and ends. */
function tokenArray(text: string): { open: number; items: { start: number; end: number }[] } | null {
  const proxy = objectStart(text, 'proxy');
  if (proxy === null) return null;
  let open: number | null = null;
  scan(text, proxy, (depth, index, name) => {
    if (depth !== 1 || name !== 'tokens') return false;
    const bracket = /^\s*:\s*\[/.exec(text.slice(index));
    if (bracket) open = index + bracket[0].length - 1;
    return true;
  });
  if (open === null) return null;
  const items: { start: number; end: number }[] = [];
  let depth = 0;
  let start = 0;
  for (let i: number = open; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      while (++i < text.length && text[i] !== '"') if (text[i] === '\\') i++;
    } else if (c === '[' || c === '{') {
      depth++;
      if (depth === 2) start = i;
    } else if (c === ']' || c === '}') {
      if (depth === 2) items.push({ start, end: i + 1 });
      depth--;
      if (depth === 0) return { open, items };
    }
  }
  return null;
}
