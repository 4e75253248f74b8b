import { describe, expect, it } from 'vitest';
import { firstInvalidOffset, locateJsonSyntaxError } from '../../cli/config/json-syntax.js';

/** JSON.parse's error for `text`, as load.ts receives it. */
function parseError(text: string): Error {
  try {
    JSON.parse(text);
  } catch (error) {
    return error as Error;
  }
  throw new Error(`${text} is JSON`);
}

const locate = (text: string) => locateJsonSyntaxError(text, parseError(text));

describe('JSON syntax errors by line and column', () => {
  it('finds the offset where JSON.parse gives none, and agrees with it where it does', () => {
    for (const text of ['{"a": }', '{"a": tru}', '{"a": 1,}', '{"a" 1}', '{"a": "x', '{"a":1}x', "{'a':1}", '[1, 2', '{"a": -}', '{"a": 1.}', '{"a": 1e}', '{"a": 01}', '{"a": "\\q"}', '{"a": "\\u12g4"}', '{"a": "x\ny"}']) {
      const offset = firstInvalidOffset(text);
      expect(offset, text).toBeDefined();
      const given = /position (\d+)/.exec(parseError(text).message)?.[1];
      if (given !== undefined) expect(offset, text).toBe(Number(given));
    }
    expect(firstInvalidOffset('{"a": [1, 2.5e-3, true, null, {"b": "\\u00e9\\n"}]}')).toBeUndefined();
  });

  it('names line and column, shows the line with a caret, and keeps only the reason of the message', () => {
    const text = '{\n  "name": "demo",\n  "backends": { "count": 3 }\n  "runtime": "host"\n}\n';
    expect(locate(text)).toEqual({
      line: 4,
      column: 3,
      reason: "Expected ',' or '}' after property value",
      excerpt: ['3 |   "backends": { "count": 3 }', '4 |   "runtime": "host"', '  |   ^'],
    });
    const trailing = locate('{\n  "name": "demo",\n}');
    expect([trailing?.line, trailing?.column, trailing?.reason]).toEqual([3, 1, 'Expected double-quoted property name']);
    const token = locate('{"name": }');
    expect([token?.line, token?.column, token?.reason]).toEqual([1, 10, "Unexpected token '}'"]);
    expect(token?.excerpt).toEqual(['1 | {"name": }', '  |          ^']);
  });

  it('ends at the end of a truncated file, and keeps tabs under the caret', () => {
    const cut = locate('{\n\t"name": "demo",\n\t"proxy": {');
    expect([cut?.line, cut?.column, cut?.reason]).toEqual([3, 12, "Expected property name or '}'"]);
    const ended = locate('{\n  "a": ');
    expect([ended?.line, ended?.column, ended?.reason]).toEqual([2, 8, 'Unexpected end of JSON input']);
    const tabbed = locate('{\n\t"a":\tx}');
    expect(tabbed?.excerpt.at(-1)).toBe('  | \t    \t^');
  });
});
