import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, uproxy } from './run.js';

/**
 * `uproxy doctor` as a user runs it, with a PATH of our making: a stand-in QEMU that leaves a
 * mark when anything runs it (the KVM and TCG probes boot guests with it), and the host's
 * /usr/bin and /bin (cc, make) or not.
 */

let root: string;
let project: string;
let standIn: string;
const qemuRan = (): boolean => existsSync(join(root, 'qemu-ran'));

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-doctor-'));
  standIn = join(root, 'bin');
  mkdirSync(standIn);
  writeFileSync(join(standIn, 'qemu-system-x86_64'), `#!/bin/sh\necho "$@" >> ${join(root, 'qemu-ran')}\n[ "$1" = --version ] && echo "QEMU stand-in" && exit 0\nexit 1\n`);
  chmodSync(join(standIn, 'qemu-system-x86_64'), 0o755);
  const init = await uproxy(['init', 'fleet'], root);
  expect(init.exitCode, init.stderr).toBe(0);
  project = join(root, 'fleet');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function doctor(args: readonly string[], cwd: string, path: string) {
  return execa(process.execPath, [BIN, 'doctor', ...args], { cwd, reject: false, stdin: 'ignore', timeout: 60_000, env: { PATH: path, HOME: root }, extendEnv: false });
}

describe('uproxy doctor', () => {
  it("checks what the project's host runtime needs, without starting QEMU for a KVM probe", async () => {
    const result = await doctor([], join(project, 'backend'), `${standIn}:/usr/bin:/bin`);
    expect(result.exitCode, result.stdout).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe(`Checking what the host runtime of ${project} needs:`);
    expect(lines.slice(1, -1).map((line) => /^✓ (\S+)/.exec(line)?.[1])).toEqual(['cc', 'make', 'llhttp', 'openssl']);
    expect(lines.at(-1)).toBe('Everything the host runtime needs is here.');
    expect(qemuRan()).toBe(false);

    // --all does run it, and what the host runtime does not need does not fail doctor.
    const all = await doctor(['--all'], project, `${standIn}:/usr/bin:/bin`);
    expect(all.exitCode, all.stdout).toBe(0);
    expect(all.stdout).toContain('Not needed by the host runtime:');
    expect(all.stdout).toMatch(/^- TCG +the probe guest failed under tcg/m);
    expect(qemuRan()).toBe(true);
  });

  it('exits 1 when a needed tool is missing, naming it and its fix', async () => {
    const result = await doctor([], project, standIn);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/^✗ cc +not on PATH: the host runtime compiles the proxy and the backend\n +fix: apt-get install build-essential$/m);
    expect(result.stdout).toMatch(/^✗ make +not on PATH/m);
    expect(result.stdout.trim().split('\n').at(-1)).toBe('The host runtime lacks 2 things it needs: cc, make (see the fix under each).');
    const json = await doctor(['--json'], project, standIn);
    expect(json.exitCode).toBe(1);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({ runtime: 'host', ok: false, source: { project } });
    expect(report.checks.filter((c: { ok: boolean }) => !c.ok).map((c: { name: string }) => c.name)).toEqual(['cc', 'make']);
  });

  it('outside a project checks the host runtime and says so; --runtime picks another', async () => {
    const outside = await doctor([], root, `${standIn}:/usr/bin:/bin`);
    expect(outside.exitCode, outside.stdout).toBe(0);
    expect(outside.stdout.split('\n')[0]).toMatch(/^No uproxy\.json here or in a directory above: checking what the host runtime \(init's default\) needs/);
    const kraft = await doctor(['--runtime', 'kraft'], project, `${standIn}:/usr/bin:/bin`);
    expect(kraft.stdout.split('\n')[0]).toBe('Checking what the kraft runtime needs (--runtime):');
    // This PATH has no kraft: the kraft runtime cannot run.
    expect(kraft.stdout).toMatch(/^✗ kraft +not installed/m);
    expect(kraft.exitCode).toBe(1);
  });
});
