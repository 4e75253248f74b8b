import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../cli/runtimes/build.js';
import type { Progress } from '../../cli/progress.js';

const project = mkdtempSync(join(tmpdir(), 'uproxy-build-'));
afterAll(() => rmSync(project, { recursive: true, force: true }));

const titles: string[] = [];
const progress: Progress = { step: (title, work) => (titles.push(title), work()), log: () => {} };

describe('buildApp', () => {
  const app = join(project, 'app');
  const build = { label: 'app', dir: app, artifact: join(app, 'build', 'app') };
  mkdirSync(app);
  // Every real run of make appends a line to runs.txt, outside the hashed sources.
  writeFileSync(join(app, 'Makefile'), `build/app: main.c\n\tmkdir -p build && cp main.c build/app && echo run >> ${project}/runs.txt\n`);
  const runs = (): number => readFileSync(join(project, 'runs.txt'), 'utf8').trim().split('\n').length;

  it('runs make once, then skips while the sources keep their content', async () => {
    writeFileSync(join(app, 'main.c'), 'one');
    const first = await buildApp(project, build, progress);
    expect(runs()).toBe(1);
    utimesSync(join(app, 'main.c'), new Date(), new Date(Date.now() + 5000));
    const second = await buildApp(project, build, progress);
    expect(runs()).toBe(1);
    expect(second).toBe(first);
    expect(titles).toEqual(['build app', 'build app (unchanged)']);
  });

  it('rebuilds when a source changes or the artifact is gone', async () => {
    writeFileSync(join(app, 'main.c'), 'two');
    await buildApp(project, build, progress);
    expect(runs()).toBe(2);
    rmSync(join(app, 'build'), { recursive: true });
    await buildApp(project, build, progress);
    expect(runs()).toBe(3);
  });

  it('fails with the end of the make output', async () => {
    writeFileSync(join(app, 'Makefile'), 'all:\n\t@echo "something specific went wrong" && false\n');
    await expect(buildApp(project, build, progress)).rejects.toMatchObject({
      message: expect.stringMatching(/building app failed \(make -C .*: exit 2\)/),
      details: expect.arrayContaining(['something specific went wrong']),
    });
  });
});
