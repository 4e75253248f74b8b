import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uproxy } from '../cli/run.js';

/**
 * The multi-stage Dockerfiles `uproxy init` writes (proxy/ and backend/), checked without
 * Docker (no registry is reachable here to pull their base images): the build stage's COPY
 * lines are replayed into an empty directory and its `make` step runs there. A file the build
 * needs but the Dockerfile forgets to copy fails here as it would in `docker build`.
 */

const root = mkdtempSync(join(tmpdir(), 'uproxy-dockerfiles-'));
beforeAll(async () => {
  const init = await uproxy(['init', 'demo'], root);
  expect(init.exitCode, init.stderr).toBe(0);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface BuildStage {
  copies: { sources: string[]; dest: string }[];
  make: string[];
}

// The first stage only (up to the second FROM): COPY lines and the `RUN make ...` line.
function buildStage(dockerfile: string): BuildStage {
  const lines = dockerfile.split('\n');
  const froms = lines.flatMap((l, i) => (/^FROM /.test(l) ? [i] : []));
  const stage = lines.slice(froms[0], froms[1]);
  const copies = stage
    .filter((l) => /^COPY /.test(l))
    .map((l) => {
      const words = l.split(/\s+/).slice(1);
      return { sources: words.slice(0, -1), dest: words[words.length - 1]! };
    });
  const run = stage.find((l) => /^RUN make\b/.test(l));
  if (!run) throw new Error('no `RUN make` in the build stage');
  return { copies, make: run.split(/\s+/).slice(2) };
}

describe('Dockerfiles written by init', () => {
  it.each(['proxy', 'backend'])('%s: the build stage builds from exactly what it copies', (app) => {
    const appDir = join(root, 'demo', app);
    const stage = buildStage(readFileSync(join(appDir, 'Dockerfile'), 'utf8'));
    const context = join(root, `context-${app}`);
    mkdirSync(context);
    for (const { sources, dest } of stage.copies) {
      for (const source of sources) {
        const target = dest.endsWith('/') && !statSync(join(appDir, source)).isDirectory() ? join(context, dest, source) : join(context, dest);
        cpSync(join(appDir, source), target, { recursive: true });
      }
    }
    // Inside the image the stage's compiler is musl-based; on this host musl-gcc is.
    const make = [...stage.make.filter((arg) => !arg.startsWith('MUSL_CC=')), 'MUSL_CC=musl-gcc'];
    execFileSync('make', make, { cwd: context, stdio: 'pipe' });
    const binary = join(context, 'build', app === 'proxy' ? 'uproxy-proxy-static' : 'backend-static');
    // Statically linked: no dynamic section, so nothing for a loader to resolve in `FROM scratch`.
    expect(execFileSync('readelf', ['-d', binary], { encoding: 'utf8' })).toMatch(/no dynamic section/);
  });
});
