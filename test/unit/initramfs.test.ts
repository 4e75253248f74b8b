import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { gzipCpio, initrdWithCertificate, readCpio, writeCpio, type CpioEntry } from '../../cli/runtimes/initramfs.js';

// Checked with GNU cpio (Debian package `cpio`, installed by .ci/run), the reference reader.
const work = mkdtempSync(join(tmpdir(), 'uproxy-cpio-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const entries: CpioEntry[] = [
  { path: 'uproxy/program', type: 'file', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
  { path: 'init', type: 'file', data: Buffer.from('abc') },
  { path: 'bin/sh', type: 'symlink', target: 'busybox' },
  { path: 'lib/modules/virtio.ko', type: 'file', data: Buffer.alloc(1001, 7) },
  { path: 'proc', type: 'directory' },
];

describe('writeCpio', () => {
  it('writes an archive cpio lists, sorted, with parent directories added', () => {
    const archive = join(work, 'a.cpio');
    writeFileSync(archive, writeCpio(entries));
    const listing = execFileSync('cpio', ['-t', '--quiet', '-F', archive], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toEqual(['bin', 'bin/sh', 'init', 'lib', 'lib/modules', 'lib/modules/virtio.ko', 'proc', 'uproxy', 'uproxy/program']);
  });

  it('extracts to the same bytes, modes and links', () => {
    const archive = join(work, 'b.cpio');
    const out = join(work, 'out');
    writeFileSync(archive, writeCpio(entries));
    execFileSync('mkdir', ['-p', out]);
    execFileSync('cpio', ['-i', '-d', '-m', '--quiet', '-F', archive], { cwd: out });
    expect(readFileSync(join(out, 'uproxy/program'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(statSync(join(out, 'uproxy/program')).mode & 0o777).toBe(0o755);
    expect(statSync(join(out, 'init')).mode & 0o777).toBe(0o644);
    expect(readFileSync(join(out, 'lib/modules/virtio.ko'))).toEqual(Buffer.alloc(1001, 7));
    expect(readlinkSync(join(out, 'bin/sh'))).toBe('busybox');
    expect(statSync(join(out, 'lib/modules/virtio.ko')).mtimeMs).toBe(0);
  });

  it('is reproducible whatever the input order, also gzipped', () => {
    const forward = writeCpio(entries);
    const reversed = writeCpio([...entries].reverse());
    expect(reversed.equals(forward)).toBe(true);
    expect(gzipCpio(reversed).equals(gzipCpio(forward))).toBe(true);
  });

  it('rejects duplicate and escaping paths', () => {
    expect(() => writeCpio([...entries, { path: '/init', type: 'directory' }])).toThrow(/"init" is listed twice/);
    expect(() => writeCpio([{ path: '../etc/passwd', type: 'directory' }])).toThrow(/invalid path/);
  });
});

describe('readCpio and the Unikraft proxy initrd', () => {
  it('reads back what GNU cpio archived (newc), gzipped or not', () => {
    const tree = join(work, 'tree');
    execFileSync('mkdir', ['-p', join(tree, 'etc')]);
    writeFileSync(join(tree, 'etc/app.conf'), 'x=1\n', { mode: 0o640 });
    execFileSync('ln', ['-sf', 'app.conf', join(tree, 'etc/link')]);
    const archive = execFileSync('sh', ['-c', 'find . -mindepth 1 | sort | cpio -o -H newc --quiet'], { cwd: tree });
    for (const bytes of [archive, gzipCpio(archive)]) {
      expect(readCpio(bytes, 'rootfs.cpio')).toEqual([
        { path: 'etc', type: 'directory', mode: 0o755 },
        { path: 'etc/app.conf', type: 'file', data: Buffer.from('x=1\n'), mode: 0o640 },
        { path: 'etc/link', type: 'symlink', target: 'app.conf' },
      ]);
    }
    expect(() => readCpio(Buffer.from('not an archive'), 'rootfs.cpio')).toThrow(/rootfs\.cpio is not an archive uproxy can extend: no "newc" header at byte 0/);
  });

  it('puts the PEM at uproxy/tls.pem, mode 0600, in place of any file there, keeping the rest of a built rootfs', () => {
    const base = join(work, 'base.cpio');
    writeFileSync(base, writeCpio([...entries, { path: 'uproxy/tls.pem', type: 'file', data: Buffer.from('stale') }]));
    const out = join(work, 'initrd');
    execFileSync('mkdir', ['-p', out]);
    execFileSync('cpio', ['-i', '-d', '-m', '--quiet'], { cwd: out, input: initrdWithCertificate(base, 'CHAIN AND KEY\n') });
    expect(readFileSync(join(out, 'uproxy/tls.pem'), 'utf8')).toBe('CHAIN AND KEY\n');
    expect(statSync(join(out, 'uproxy/tls.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(out, 'uproxy/program'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(readCpio(initrdWithCertificate(undefined, 'PEM'), 'x').map((e) => e.path)).toEqual(['uproxy', 'uproxy/tls.pem']);
  });
});
