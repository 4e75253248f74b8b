import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { register } from '../../cli/commands/sync.js';
import { parseConfig } from '../../cli/config/load.js';
import { planFleet } from '../../cli/fleet/plan.js';
import { syncArgs } from '../../cli/kubernetes/manifests.js';
import { templateFiles } from '../../cli/templates.js';

/**
 * The sync controller's image (templates/sync/Dockerfile, which cannot be built here) against
 * what `export kubernetes` runs in it: its entrypoint followed by the manifests' args must be a
 * `uproxy sync` command line this CLI takes.
 */

const dockerfile = readFileSync(new URL('../../templates/sync/Dockerfile', import.meta.url), 'utf8');
const instruction = (name: string): string => {
  const line = dockerfile.split('\n').filter((l) => l.startsWith(`${name} `)).at(-1);
  if (line === undefined) throw new Error(`templates/sync/Dockerfile has no ${name}`);
  return line.slice(name.length + 1);
};

describe('the sync controller image', () => {
  it('runs uproxy, so the manifests\' args `sync --kubernetes ...` are options the sync command has', () => {
    const entrypoint = JSON.parse(instruction('ENTRYPOINT')) as string[];
    expect(entrypoint).toEqual(['node', '/app/bin/uproxy']);
    const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
    const config = parseConfig(JSON.stringify({
      name: 'demo', runtime: 'qemu', backends: { count: 2 },
      proxy: { tokens: [{ name: 'default', sha256: sha256('client') }], adminTokenSha256: sha256('admin') },
    }), 'uproxy.json');
    const args = syncArgs(planFleet(config, '/srv/demo'), 'edge');
    expect(args.slice(0, 2)).toEqual(['sync', '--kubernetes']);
    const program = new Command();
    register(program);
    const known = program.commands.find((c) => c.name() === 'sync')!.options.map((o) => o.long);
    for (const flag of args.filter((a) => a.startsWith('--'))) expect(known, flag).toContain(flag);
    for (const required of ['--namespace', '--service', '--admin-url', '--admin-token-file']) expect(args).toContain(required);
  });

  it('runs as a numeric non-root user, which runAsNonRoot can check', () => {
    expect(instruction('USER')).toMatch(/^[1-9]\d*(:\d+)?$/);
  });

  it('is no file of the projects `init` writes', () => {
    expect(templateFiles().filter((f) => f.to.startsWith('sync/'))).toEqual([]);
  });
});
