import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { afterAll, describe, expect, it } from 'vitest';
import { uproxy } from '../cli/run.js';

/**
 * What `uproxy init` writes for Unikraft, checked the way kraft would read it: every Kraftfile
 * parses as YAML with the fields of kraftkit's v0.6 spec, and the proxy's C code links against
 * musl using only the functions proxy/README.md lists as available in Unikraft.
 */

const target = z.enum(['qemu/x86_64', 'fc/x86_64', 'qemu/arm64', 'fc/arm64']);
const kconfig = z.record(z.string().regex(/^CONFIG_[A-Z0-9_]+$/), z.union([z.string(), z.number()]));
const command = z.array(z.string()).min(1);
const native = z.strictObject({
  spec: z.literal('v0.6'),
  name: z.string().regex(/^[a-z][a-z0-9-]*$/),
  unikraft: z.strictObject({ version: z.string(), kconfig }),
  libraries: z.record(z.string(), z.union([z.string(), z.strictObject({ version: z.string(), kconfig })])),
  targets: z.array(target).min(1),
  cmd: command,
});
const elfloader = z.strictObject({
  spec: z.literal('v0.6'),
  name: z.string(),
  runtime: z.string().regex(/^[a-z0-9.\/-]+:[a-z0-9.-]+$/),
  rootfs: z.string(),
  cmd: command,
});

const root = mkdtempSync(join(tmpdir(), 'uproxy-kraftfiles-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function kraftfiles(dir: string): string[] {
  return ['proxy', 'backend'].flatMap((app) => readdirSync(join(dir, app)).filter((f) => f.startsWith('Kraftfile')).map((f) => join(dir, app, f)));
}

describe('Unikraft templates', () => {
  it('native: Kraftfiles with musl, lwip, posix-poll, a static address and a proxy-sized connection limit', async () => {
    const init = await uproxy(['init', 'native', '--runtime', 'kraft'], root);
    expect(init.exitCode, init.stderr).toBe(0);
    const files = kraftfiles(join(root, 'native'));
    expect(files.map((f) => f.slice(root.length))).toEqual(['/native/proxy/Kraftfile', '/native/backend/Kraftfile']);
    for (const file of files) {
      const kraftfile = native.parse(parse(readFileSync(file, 'utf8')));
      expect(kraftfile.targets).toEqual(expect.arrayContaining(['qemu/x86_64', 'fc/x86_64']));
      expect(Object.keys(kraftfile.libraries)).toEqual(expect.arrayContaining(['musl', 'lwip']));
      expect(kraftfile.unikraft.kconfig).toMatchObject({ CONFIG_LIBUKNETDEV_EINFO_LIBPARAM: 'y', CONFIG_LIBPOSIX_POLL: 'y' });
      // Both apps compile llhttp in strict mode through the one shared fragment.
      const makefile = readFileSync(join(file, '..', 'Makefile.uk'), 'utf8');
      expect(makefile).toMatch(/^include \$\(APP(UPROXY|BACKEND)_BASE\)\/llhttp\.uk$/m);
      expect(makefile).toContain('_CINCLUDES-y += -I$(LIBUPROXYLLHTTP_TREE)/include');
      expect(readFileSync(join(file, '..', 'llhttp.uk'), 'utf8')).toContain('LIBUPROXYLLHTTP_CFLAGS-y += -DLLHTTP_STRICT_MODE=1');
    }
    const proxy = native.parse(parse(readFileSync(files[0]!, 'utf8')));
    const lwip = proxy.libraries.lwip as { kconfig: Record<string, unknown> };
    expect(lwip.kconfig).toMatchObject({ CONFIG_LWIP_SOCKET: 'y', CONFIG_LWIP_THREADS: 'y' });
    expect(Number(lwip.kconfig.CONFIG_LWIP_NUM_TCPCON)).toBeGreaterThanOrEqual(256);
    expect(Number(proxy.unikraft.kconfig.CONFIG_LIBUKBOOT_MAXNBARGS)).toBeGreaterThanOrEqual(256);
  });

  it('elfloader: base runtime, a Dockerfile or a directory rootfs, and no Makefile.uk', async () => {
    const init = await uproxy(['init', 'elf', '--runtime', 'kraft', '--unikraft', 'elfloader'], root);
    expect(init.exitCode, init.stderr).toBe(0);
    const dir = join(root, 'elf');
    const files = kraftfiles(dir);
    expect(files).toHaveLength(4);
    for (const file of files) {
      const kraftfile = elfloader.parse(parse(readFileSync(file, 'utf8')));
      expect(kraftfile.runtime).toBe('base:latest');
      expect(kraftfile.cmd[0]).toMatch(/^\/(uproxy-proxy|backend)$/);
      expect(kraftfile.rootfs).toBe(file.endsWith('rootfs-dir') ? './rootfs' : './Dockerfile');
      const dockerfile = readFileSync(join(file, '..', 'Dockerfile'), 'utf8');
      expect(dockerfile).toMatch(/-static-pie/);
      expect(dockerfile).toMatch(/^FROM scratch$/m);
    }
    for (const app of ['proxy', 'backend']) {
      expect(readdirSync(join(dir, app))).not.toContain('Makefile.uk');
      expect(readdirSync(join(dir, app))).not.toContain('llhttp.uk');
      // The directory rootfs really is buildable without BuildKit: static-pie binaries.
      execFileSync('make', ['-f', 'rootfs.mk'], { cwd: join(dir, app), stdio: 'ignore' });
      // static-pie: position-independent (ELF type DYN) and no program interpreter.
      const binary = join(dir, app, 'rootfs', app === 'proxy' ? 'uproxy-proxy' : 'backend');
      expect(execFileSync('readelf', ['-h', binary], { encoding: 'utf8' })).toMatch(/Type:\s+DYN/);
      expect(execFileSync('readelf', ['-l', binary], { encoding: 'utf8' })).not.toMatch(/INTERP/);
    }
  });

  it('the llhttp digests pinned for the Unikraft build match the local llhttp, and --vendor-llhttp copies it', async () => {
    const init = await uproxy(['init', 'vendored', '--vendor-llhttp'], root);
    expect(init.exitCode, init.stderr).toBe(0);
    for (const app of ['proxy', 'backend']) {
      const dir = join(root, 'vendored', app);
      const check = execFileSync('sha256sum', ['--check', '--strict', '../llhttp.sha256'], { cwd: join(dir, 'llhttp'), encoding: 'utf8' });
      expect(check.trim().split('\n')).toEqual(['src/api.c: OK', 'src/http.c: OK', 'src/llhttp.c: OK', 'include/llhttp.h: OK']);
      expect(readFileSync(join(dir, 'llhttp.uk'), 'utf8')).toContain('release/v$(LIBUPROXYLLHTTP_VERSION).tar.gz');
    }
    // The backend's own Makefile compiles the vendored copy when there is one.
    const make = execFileSync('make', ['-n'], { cwd: join(root, 'vendored', 'backend'), encoding: 'utf8' });
    expect(make).toContain('llhttp/src/llhttp.c');
    expect(make).toContain('-Illhttp/include');
  });
});
