import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findProject, requireProject } from '../../cli/config/project.js';

const root = mkdtempSync(join(tmpdir(), 'uproxy-find-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('finding the project', () => {
  it('is the nearest directory with uproxy.json, from the start up', () => {
    mkdirSync(join(root, 'outer/inner/src'), { recursive: true });
    writeFileSync(join(root, 'outer/uproxy.json'), '{}');
    writeFileSync(join(root, 'outer/inner/uproxy.json'), '{}');
    expect(findProject(join(root, 'outer/inner/src'))).toEqual({ dir: join(root, 'outer/inner'), looked: [join(root, 'outer/inner/src'), join(root, 'outer/inner')] });
    expect(findProject(join(root, 'outer')).dir).toBe(join(root, 'outer'));
  });

  it('counts a running fleet whose uproxy.json is gone, so down can stop it', () => {
    mkdirSync(join(root, 'gone/.uproxy/logs'), { recursive: true });
    writeFileSync(join(root, 'gone/.uproxy/state.json'), '{}');
    expect(findProject(join(root, 'gone/.uproxy/logs')).dir).toBe(join(root, 'gone'));
  });

  it('says every place it looked when there is none', () => {
    const start = join(root, 'none/a');
    mkdirSync(start, { recursive: true });
    const looked: string[] = [];
    for (let dir = start; ; dir = dirname(dir)) {
      looked.push(dir);
      if (dirname(dir) === dir) break;
    }
    expect(findProject(start)).toEqual({ looked });
    try {
      requireProject(start);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(new RegExp(`^no uproxy\\.json in ${start} or any directory above it: run \`uproxy init\``));
      expect((error as { details: string[] }).details).toEqual(['looked for:', ...looked.map((dir) => `  ${join(dir, 'uproxy.json')}`)]);
    }
  });
});
