import { describe, expect, it } from 'vitest';
import { withBackendsCount, withTokenAdded, withTokenRemoved } from '../../cli/config/edit.js';

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

/** `uproxy token add` / `revoke` touch one entry of proxy.tokens and nothing else. */
describe('withTokenAdded / withTokenRemoved', () => {
  const text = [
    '{',
    '  "name": "demo",',
    '  "tokens": [{ "name": "not-these" }],',
    '  "proxy": {',
    '    "port": 8080,',
    '    "tokens": [',
    '      {',
    '        "name": "default",',
    '        "sha256": "aa"',
    '      }',
    '    ],',
    '    "adminTokenSha256": "cc"',
    '  }',
    '}',
    '',
  ].join('\n');

  it('appends an entry on its own line, indented like the one before', () => {
    const added = withTokenAdded(text, { name: 'ci', sha256: 'bb', created: '2026-01-01T00:00:00Z' });
    expect(added).toBe(text.replace('      }\n    ],', '      },\n      { "name": "ci", "sha256": "bb", "created": "2026-01-01T00:00:00Z" }\n    ],'));
    expect(withTokenAdded('{"proxy":{"tokens":[{"name":"a"}]}}', { name: 'b' })).toBe('{"proxy":{"tokens":[{"name":"a"}, { "name": "b" }]}}');
  });

  it('removes an entry with the comma that joined it, first, middle or last', () => {
    const three = withTokenAdded(withTokenAdded(text, { name: 'ci', sha256: 'bb' }), { name: 'ops', sha256: 'dd' });
    expect(withTokenRemoved(three, 'ops')).toBe(withTokenAdded(text, { name: 'ci', sha256: 'bb' }));
    expect(JSON.parse(withTokenRemoved(three, 'ci')).proxy.tokens.map((t: { name: string }) => t.name)).toEqual(['default', 'ops']);
    const first = withTokenRemoved(three, 'default');
    expect(JSON.parse(first).proxy.tokens.map((t: { name: string }) => t.name)).toEqual(['ci', 'ops']);
    expect(first).toContain('    "tokens": [\n      { "name": "ci"');
    expect(withTokenRemoved(text, 'nope')).toBe(text);
    expect(JSON.parse(withTokenRemoved(three, 'not-these')).tokens).toEqual([{ name: 'not-these' }]);
  });
});
