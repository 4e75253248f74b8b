import { describe, expect, it } from 'vitest';
import { withBackendsCount } from '../../cli/config/edit.js';

/** `up --backends N` rewrites only the count in the user's uproxy.json. */
describe('withBackendsCount', () => {
  it('changes only the number, keeping spacing, key order and other keys', () => {
    const text = [
      '{',
      '    "name": "demo",   "runtime": "host",',
      '    "proxy": { "count": 9, "port": 8080 },',
      '    "backends": {',
      '        "health": { "path": "/health" },',
      '        "count"  :  3,',
      '        "app": "backend"',
      '    }',
      '}',
      '',
    ].join('\n');
    expect(withBackendsCount(text, 5)).toBe(text.replace('"count"  :  3', '"count"  :  5'));
  });

  it('leaves the text as it is when the count is already that', () => {
    const text = '{"backends":{"count":2}}';
    expect(withBackendsCount(text, 2)).toBe(text);
  });

  it('adds the count to a backends object that has none, indented like its members', () => {
    const text = '{\n  "name": "demo",\n  "backends": {\n    "app": "backend"\n  }\n}\n';
    const edited = withBackendsCount(text, 4);
    expect(edited).toBe('{\n  "name": "demo",\n  "backends": {\n    "count": 4,\n    "app": "backend"\n  }\n}\n');
    expect(JSON.parse(edited).backends).toEqual({ count: 4, app: 'backend' });
  });

  it('fills an empty backends object and adds a missing one', () => {
    expect(JSON.parse(withBackendsCount('{"backends": {}}', 6))).toEqual({ backends: { count: 6 } });
    expect(JSON.parse(withBackendsCount('{"name": "demo"}', 6))).toEqual({ name: 'demo', backends: { count: 6 } });
  });

  it('is not fooled by "backends" or "count" inside strings or nested objects', () => {
    const text = '{"name": "backends", "note": "\\"count\\": 1", "backends": {"health": {"count": 7}, "count": 3}}';
    expect(JSON.parse(withBackendsCount(text, 8))).toEqual({ name: 'backends', note: '"count": 1', backends: { health: { count: 7 }, count: 8 } });
  });
});
