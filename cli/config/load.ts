import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import { UserError } from '../errors.js';
import { locateJsonSyntaxError } from './json-syntax.js';
import { CONFIG_FILE } from './project.js';
import { uproxyConfig, type UproxyConfig } from './schema.js';

export { CONFIG_FILE };
export const SCHEMA_FILE = 'uproxy.schema.json';

/** Reads and validates `<dir>/uproxy.json`; any problem becomes one UserError listing all of them. */
export function loadConfig(projectDir: string): UproxyConfig {
  const file = join(projectDir, CONFIG_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError(`no ${CONFIG_FILE} in ${projectDir}: run \`uproxy init\` there first, or run uproxy from your project directory`);
    }
    throw new UserError(`cannot read ${file}: ${(error as Error).message}`);
  }
  return parseConfig(text, file);
}

/** Validates the text of a uproxy.json; `source` names it in error messages. */
export function parseConfig(text: string, source: string): UproxyConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw jsonSyntaxError(text, source, error as Error);
  }
  const parsed = uproxyConfig.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  ${formatIssue(issue, raw)}`);
    throw new UserError(`${source} has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

/** One line per problem, such as `backends.count: expected an integer >= 1, got 0`. */
export function formatIssue(issue: z.core.$ZodIssue, input: unknown): string {
  const path = issue.path.length === 0 ? '(top level)' : issue.path.map(String).join('.');
  const got = valueAt(input, issue.path);
  const gotText = got.found ? `, got ${show(got.value)}` : '';
  switch (issue.code) {
    case 'invalid_type':
      if (!got.found || got.value === undefined) return `${path}: is required (expected ${article(issue.expected)})`;
      return `${path}: expected ${article(issue.expected)}${gotText}`;
    case 'too_small':
      return `${path}: expected ${sizeLimit(issue.origin, '>=', issue.minimum, got.value)}${gotText}`;
    case 'too_big':
      return `${path}: expected ${sizeLimit(issue.origin, '<=', issue.maximum, got.value)}${gotText}`;
    case 'invalid_value':
      return `${path}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${gotText}`;
    case 'unrecognized_keys':
      return `${path}: unknown ${issue.keys.length === 1 ? 'key' : 'keys'} ${issue.keys.map((k) => `"${k}"`).join(', ')} (check the spelling; ${SCHEMA_FILE} lists every key)`;
    default:
      return `${path}: ${issue.message}${gotText}`;
  }
}

function sizeLimit(origin: string, op: string, limit: number | bigint, value: unknown): string {
  if (origin === 'array') return `a list of ${op} ${limit} ${Number(limit) === 1 ? 'item' : 'items'}`;
  if (origin === 'string') return `a string of ${op} ${limit} characters`;
  const kind = typeof value === 'number' && Number.isInteger(value) ? 'an integer' : 'a number';
  return `${kind} ${op} ${limit}`;
}

function article(expected: string): string {
  const words: Record<string, string> = {
    int: 'an integer', number: 'a number', string: 'a string', object: 'an object', array: 'a list', boolean: 'true or false',
  };
  return words[expected] ?? expected;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): { found: boolean; value?: unknown } {
  let current = input;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || !(key in (current as object))) return { found: false };
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return { found: true, value: current };
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** `uproxy.json:3:5: not valid JSON: …`, with the line and a caret under the column. */
function jsonSyntaxError(text: string, source: string, error: Error): UserError {
  const found = locateJsonSyntaxError(text, error);
  if (!found) return new UserError(`${source} is not valid JSON: ${error.message}`);
  return new UserError(`${source}:${found.line}:${found.column}: not valid JSON: ${found.reason}`, [
    ...found.excerpt,
    'JSON wants double quotes around keys and strings, a comma between two items and none after the last, and no comments',
  ]);
}
