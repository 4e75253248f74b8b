import { appendFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initProject, uproxy } from './run.js';

/**
 * `up --dry-run` on a running host fleet: it prints the reconcile plan `up` would carry out and
 * changes nothing (same processes, same state, no build, uproxy.json as it was).
 */

let root: string;
let dir: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-dry-run-'));
  dir = await initProject(root, 'fleet', 2, (config) => {
    config.restart = 'no';
  });
});
afterAll(async () => {
  await uproxy(['down', '--force'], dir);
  rmSync(root, { recursive: true, force: true });
});

/** What a dry run must leave as it was: the machines and their PIDs, the state, the config, the builds. */
async function snapshot(): Promise<unknown> {
  const ps = await uproxy(['ps', '--json'], dir);
  expect(ps.exitCode, ps.stderr).toBe(0);
  const machines = (JSON.parse(ps.stdout) as { machines: { name: string; pid: number; state: string }[] }).machines;
  const read = (path: string): string => readFileSync(join(dir, path), 'utf8');
  return {
    machines: machines.map((m) => [m.name, m.pid, m.state]),
    state: read('.uproxy/state.json'),
    config: read('uproxy.json'),
    builds: read('.uproxy/builds.json'),
    binary: statSync(join(dir, 'backend/build/backend')).mtimeMs,
  };
}

async function dryRun(...args: string[]): Promise<string[]> {
  const result = await uproxy(['up', '--dry-run', ...args], dir);
  expect(result.exitCode, result.stderr).toBe(0);
  return result.stdout.trim().split('\n');
}

describe('up --dry-run on a running host fleet', () => {
  it('prints what up would change, and changes nothing', { timeout: 240_000 }, async () => {
    const up = await uproxy(['up', '--backends', '2'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    const before = await snapshot();

    expect(await dryRun()).toEqual(['already up to date: nothing to do']);

    const scaledUp = await dryRun('--backends', '3');
    expect(scaledUp[0]).toBe('keep backend-1, backend-2, proxy (unchanged)');
    expect(scaledUp[1]).toMatch(/^start backend-3 \(new\): \S+\/backend\/build\/backend --listen 127\.0\.0\.1:\d+ --name backend-3$/);
    expect(scaledUp.slice(2)).toEqual([
      'add backend-3 to the proxy through its admin API (POST /backends)',
      'wait until the proxy reports 3 backends up',
    ]);

    expect(await dryRun('--backends', '1')).toEqual([
      'keep backend-1, proxy (unchanged)',
      'drain backend-2 and remove it from the proxy through its admin API (DELETE /backends/backend-2)',
      'wait until the proxy reports 1 backend up',
      'stop backend-2 (removed from the proxy)',
    ]);
    expect(await snapshot()).toEqual(before);

    // A changed source: up would rebuild the backend and restart each backend behind the proxy.
    appendFileSync(join(dir, 'backend/main.c'), '\n/* changed */\n');
    const rebuilt = await dryRun();
    expect(rebuilt[0]).toBe('build backend (sources changed)');
    expect(rebuilt[1]).toBe('keep proxy (unchanged)');
    expect(rebuilt[2]).toMatch(/^restart backend-1 \(changed\), drained first: \S+ --listen 127\.0\.0\.1:\d+ --name backend-1$/);
    expect(rebuilt[3]).toMatch(/^restart backend-2 \(changed\), drained first: /);
    expect(rebuilt[4]).toBe('wait until the proxy reports 2 backends up');
    expect(await snapshot()).toEqual(before);

    // A certificate up would issue: said first, and not written by the dry run.
    const certificate = join(dir, '.uproxy/tls/proxy.pem');
    renameSync(certificate, `${certificate}.kept`);
    const renewal = await dryRun();
    expect(renewal[0]).toBe('renew the proxy certificate in .uproxy/tls/proxy.pem (there is no proxy certificate yet); a proxy that keeps running gets it through its admin API (PUT /tls/certificates/0)');
    expect(existsSync(certificate)).toBe(false);
    renameSync(`${certificate}.kept`, certificate);
  });

  it('lists the commands of a cold start without a running fleet', async () => {
    const down = await uproxy(['down'], dir);
    expect(down.exitCode, down.stderr).toBe(0);
    const cold = await dryRun();
    expect(cold[0]).toMatch(/^make -C \S+\/proxy$/);
    expect(cold.some((line) => / --name backend-2$/.test(line))).toBe(true);
  });
});
