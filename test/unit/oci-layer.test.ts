import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { layerTar, type LayerFile } from '../../cli/oci/layer.js';

// Checked with GNU tar, the reference reader (and what unpacks layers in most tools' tests).
const work = mkdtempSync(join(tmpdir(), 'uproxy-layer-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const files: LayerFile[] = [
  { path: 'urunc.json', data: Buffer.from('{"a":"b"}'), mode: 0o644 },
  { path: '.boot/kernel', data: Buffer.alloc(1001, 7), mode: 0o644 },
  { path: 'uproxy-proxy', data: Buffer.from('\x7fELF...'), mode: 0o755 },
  { path: '.boot/deep/initrd', data: Buffer.alloc(0), mode: 0o600 },
];

function tar(args: string[], archive: Buffer): string {
  const file = join(work, `${Math.random()}.tar`);
  writeFileSync(file, archive);
  return execFileSync('tar', [...args, '-f', file], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
}

describe('layerTar', () => {
  it('lists every file after its parent directories, sorted, owned by 0:0 at time 0 with the given modes', async () => {
    const listing = tar(['--list', '--verbose', '--numeric-owner', '--full-time'], await layerTar(files)).trim().split('\n');
    expect(listing.map((line) => line.split(/\s+/).filter((_, i) => i !== 2).join(' '))).toEqual([
      'drwxr-xr-x 0/0 1970-01-01 00:00:00 .boot/',
      'drwxr-xr-x 0/0 1970-01-01 00:00:00 .boot/deep/',
      '-rw------- 0/0 1970-01-01 00:00:00 .boot/deep/initrd',
      '-rw-r--r-- 0/0 1970-01-01 00:00:00 .boot/kernel',
      '-rwxr-xr-x 0/0 1970-01-01 00:00:00 uproxy-proxy',
      '-rw-r--r-- 0/0 1970-01-01 00:00:00 urunc.json',
    ]);
  });

  it('unpacks to the same bytes', async () => {
    const out = join(work, 'out');
    mkdirSync(out);
    const archive = join(work, 'unpack.tar');
    writeFileSync(archive, await layerTar(files));
    execFileSync('tar', ['-x', '-f', archive, '-C', out]);
    for (const file of files) expect(readFileSync(join(out, file.path)).equals(Buffer.from(file.data))).toBe(true);
  });

  it('gives the same bytes for the same files in any order', async () => {
    const once = await layerTar(files);
    expect((await layerTar([...files].reverse())).equals(once)).toBe(true);
    expect(once.length % 512).toBe(0);
  });

  it('refuses paths a layer must not hold', async () => {
    const file = (path: string): LayerFile => ({ path, data: Buffer.from('x'), mode: 0o644 });
    await expect(layerTar([file('/etc/passwd')])).rejects.toThrow(/must be relative/);
    await expect(layerTar([file('a/../../x')])).rejects.toThrow(/without \. or \.\./);
    await expect(layerTar([file('a'), file('a')])).rejects.toThrow(/given twice/);
    await expect(layerTar([file('a'), file('a/b')])).rejects.toThrow(/both a file and a directory/);
    await expect(layerTar([file('x'.repeat(101))])).rejects.toThrow(/longer than a ustar name/);
  });
});
