import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findGuestKernel } from '../../cli/runtimes/kernel.js';
import { BIN } from '../cli/run.js';
import { skipUnlessCi } from '../support/prerequisites.js';
import { addNamespace, deleteNamespace, whyCannotRun } from './netns.js';

/**
 * `up --dry-run` on a running qemu fleet (one backend, TCG) prints the changes `up` would make
 * and changes nothing. uproxy runs in a network namespace of this file's, so its bridge and
 * taps never touch the host.
 */

const skip = skipUnlessCi(whyCannotRun());
const ns = `upq-dry-${process.pid}`;
let root: string;
let dir: string;

function inside(args: string[], timeoutMs = 300_000) {
  return execa('ip', ['netns', 'exec', ns, 'node', BIN, ...args], { cwd: dir, reject: false, timeout: timeoutMs, stdin: 'ignore' });
}

async function dryRun(...args: string[]): Promise<string[]> {
  const result = await inside(['up', '--dry-run', ...args]);
  expect(result.exitCode, result.stderr).toBe(0);
  return result.stdout.trim().split('\n');
}

describe.skipIf(skip !== undefined)(`up --dry-run on a running qemu fleet${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    // Fetched from the host's namespace: the test namespace has no route to a Debian mirror.
    await findGuestKernel();
    addNamespace(ns);
    root = mkdtempSync(join(tmpdir(), 'uproxy-qemu-dry-run-'));
    const init = await execa('node', [BIN, 'init', 'fleet', '--runtime', 'qemu', '--backends', '1'], { cwd: root, reject: false });
    expect(init.exitCode, init.stderr).toBe(0);
    dir = join(root, 'fleet');
    const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
    config.restart = 'no';
    writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
  });
  afterAll(async () => {
    if (dir) await inside(['down', '--force'], 120_000);
    deleteNamespace(ns);
    if (root) rmSync(root, { recursive: true, force: true });
  }, 180_000);

  it('shows a new backend VM, a rebuilt backend rolled behind the proxy, and touches nothing', { timeout: 400_000 }, async () => {
    const up = await inside(['up']);
    expect(up.exitCode, up.stderr).toBe(0);
    const state = readFileSync(join(dir, '.uproxy/state.json'), 'utf8');

    expect(await dryRun()).toEqual(['already up to date: nothing to do']);
    const scaled = await dryRun('--backends', '2');
    expect(scaled[0]).toMatch(/^network: bridge uproxy0 172\.44\.0\.1\/24, 3 taps /);
    expect(scaled[1]).toBe('keep backend-1, proxy (unchanged)');
    expect(scaled[2]).toMatch(/^start backend-2 \(new\): qemu-system-x86_64 -name fleet-backend-2 /);
    expect(scaled.slice(3)).toEqual(['add backend-2 to the proxy through its admin API (POST /backends)', 'wait until the proxy reports 2 backends up']);

    appendFileSync(join(dir, 'backend/main.c'), '\n/* changed */\n');
    const rebuilt = await dryRun();
    expect(rebuilt[0]).toBe('build backend (static) (sources changed)');
    expect(rebuilt[1]).toBe('keep proxy (unchanged)');
    expect(rebuilt[2]).toMatch(/^restart backend-1 \(changed\), drained first: qemu-system-x86_64 /);

    expect(readFileSync(join(dir, '.uproxy/state.json'), 'utf8')).toBe(state);
    const ps = await inside(['ps', '--json']);
    expect(ps.exitCode, ps.stderr).toBe(0);
    const machines = (JSON.parse(ps.stdout) as { machines: { name: string; state: string }[] }).machines;
    expect(machines.map((m) => [m.name, m.state])).toEqual([['backend-1', 'running'], ['proxy', 'running']]);
  });
});
