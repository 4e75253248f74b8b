import { constants, accessSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseAccel } from '../../cli/runtimes/probe.js';
import { skipUnlessCi } from '../support/prerequisites.js';

function kvmOpens(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Runs `work` with no QEMU reachable on PATH, so any probe it starts fails at once. */
async function withoutQemu<T>(work: () => Promise<T>): Promise<T> {
  const path = process.env.PATH;
  process.env.PATH = mkdtempSync(join(tmpdir(), 'uproxy-empty-path-'));
  try {
    return await work();
  } finally {
    rmSync(process.env.PATH, { recursive: true, force: true });
    process.env.PATH = path;
  }
}

// Without /dev/kvm, `auto` picks TCG before any probe, and there is no verdict to keep: the
// tests skip on such a developer machine, and fail in CI, where they must run.
const skip = skipUnlessCi(kvmOpens() ? undefined : 'needs a /dev/kvm it can open read-write (the verdict kept is a KVM probe\'s)');

describe.skipIf(skip !== undefined)('--accel auto keeps the KVM probe verdict until the host reboots', () => {
  // Made in beforeAll, not here: a skipped describe still runs this body, and nothing would remove it.
  let cache: string;
  let verdictFile: string;
  let xdg: string | undefined;
  beforeAll(() => {
    cache = mkdtempSync(join(tmpdir(), 'uproxy-accel-cache-'));
    verdictFile = join(cache, 'uproxy', 'kvm-probe.json');
    xdg = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = cache;
  });
  afterAll(() => {
    if (xdg === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = xdg;
    rmSync(cache, { recursive: true, force: true });
  });

  it('probes once, then answers the same from the kept verdict without starting QEMU', async () => {
    // A real probe guest under KVM: where nested guests hang (as here) this takes the whole deadline.
    const first = await chooseAccel('auto');
    expect(existsSync(verdictFile)).toBe(true);
    const again = await withoutQemu(() => chooseAccel('auto'));
    expect(again.accel).toBe(first.accel);
    expect(again.reason).toContain('probed earlier since this boot');
  }, 60_000);

  it('probes again when the verdict is from another boot, and keeps no verdict from a probe that could not run', async () => {
    writeFileSync(verdictFile, JSON.stringify({ bootId: 'another-boot', kernel: null, ok: true, detail: 'stale' }));
    const chosen = await withoutQemu(() => chooseAccel('auto'));
    expect(chosen.accel).toBe('tcg');
    expect(chosen.reason).not.toContain('probed earlier');
    expect(JSON.parse(readFileSync(verdictFile, 'utf8')).bootId).toBe('another-boot');
  });
});
