import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildChecks } from '../../cli/runtimes/probe.js';

/** `uproxy doctor`'s first checks: what building the apps needs, each with its Debian package. */
const dir = mkdtempSync(join(tmpdir(), 'uproxy-doctor-build-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('doctor: build tools', () => {
  it('names each missing tool with the apt-get install that provides it', () => {
    mkdirSync(join(dir, 'empty'));
    const checks = buildChecks(join(dir, 'empty'), join(dir, 'no-llhttp'), join(dir, 'no-openssl', 'ssl.h'));
    expect(checks.map((c) => [c.name, c.ok, c.fix])).toEqual([
      ['cc', false, 'apt-get install build-essential'],
      ['make', false, 'apt-get install make'],
      ['llhttp', false, 'apt-get install node-llhttp'],
      ['openssl', false, 'apt-get install libssl-dev'],
      ['musl-gcc', false, 'apt-get install musl-tools'],
    ]);
  });

  it('finds the tools on PATH, the llhttp sources and the OpenSSL headers', () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    for (const tool of ['cc', 'make', 'musl-gcc']) {
      writeFileSync(join(bin, tool), '#!/bin/sh\n');
      chmodSync(join(bin, tool), 0o755);
    }
    mkdirSync(join(dir, 'llhttp'));
    writeFileSync(join(dir, 'llhttp', 'llhttp.c'), '');
    mkdirSync(join(dir, 'openssl'));
    writeFileSync(join(dir, 'openssl', 'ssl.h'), '');
    const checks = buildChecks(`${join(dir, 'empty')}:${bin}`, join(dir, 'llhttp'), join(dir, 'openssl', 'ssl.h'));
    expect(checks.every((c) => c.ok)).toBe(true);
    expect(checks[0]!.detail).toBe(`${join(bin, 'cc')}: the host runtime compiles the proxy and the backend`);
  });
});
