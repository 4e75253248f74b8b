/**
 * A writer for the cpio "newc" format the Linux kernel unpacks as its initramfs, and the
 * layout of the initramfs uproxy boots a `microvm` guest with. Archives are reproducible:
 * entries sorted by path, every mtime, uid and gid zero, inode numbers by position.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GUEST_PATHS } from '../fleet/guest-paths.js';

export type CpioEntry =
  | { path: string; type: 'directory'; mode?: number }
  | { path: string; type: 'file'; data: Uint8Array; mode?: number }
  | { path: string; type: 'symlink'; target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const TRAILER = 'TRAILER!!!';

/**
 * The archive for `entries`, with every missing parent directory added, so the kernel never
 * meets a file before its directory. Paths are relative (`bin/sh`), as the kernel expects.
 */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const byPath = new Map<string, CpioEntry>();
  for (const entry of entries) {
    const path = normalize(entry.path);
    if (byPath.has(path)) throw new Error(`initramfs: "${path}" is listed twice`);
    byPath.set(path, { ...entry, path });
  }
  for (const path of [...byPath.keys()]) {
    for (let dir = parentOf(path); dir !== ''; dir = parentOf(dir)) {
      if (!byPath.has(dir)) byPath.set(dir, { path: dir, type: 'directory' });
    }
  }
  const sorted = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const chunks: Buffer[] = [];
  sorted.forEach((entry, i) => chunks.push(...record(i + 1, entry)));
  chunks.push(...header(TRAILER, 0, 0, 1, Buffer.alloc(0)));
  return Buffer.concat(chunks);
}

/** gzip without a timestamp or file name, so the compressed archive is reproducible too. */
export function gzipCpio(archive: Buffer): Buffer {
  return gzipSync(archive, { level: 9 });
}

/**
 * The entries of a "newc" archive (gzipped or not), such as the initrd `kraft build` makes
 * from a Kraftfile's `rootfs:`, so uproxy can add a file to it. Hard links and device nodes
 * are refused: uproxy's archives have none, and kraft's rootfs builds write none.
 */
export function readCpio(archive: Buffer, where: string): CpioEntry[] {
  const data = archive[0] === 0x1f && archive[1] === 0x8b ? gunzipSync(archive) : archive;
  const entries: CpioEntry[] = [];
  const bad = (why: string): never => { throw new Error(`${where} is not an archive uproxy can extend: ${why}`); };
  for (let at = 0; ;) {
    if (data.length < at + 110 || data.toString('latin1', at, at + 6) !== '070701') bad(`no "newc" header at byte ${at}`);
    const field = (i: number): number => parseInt(data.toString('latin1', at + 6 + i * 8, at + 14 + i * 8), 16);
    const [mode, nlink, size, nameSize] = [field(1), field(4), field(6), field(11)];
    const nameAt = at + 110;
    const path = data.toString('utf8', nameAt, nameAt + nameSize - 1);
    const dataAt = nameAt + nameSize + ((4 - ((110 + nameSize) % 4)) % 4);
    if (dataAt + size > data.length) bad(`"${path}" runs past the end`);
    if (path === TRAILER) return entries;
    const body = data.subarray(dataAt, dataAt + size);
    const type = mode & 0o170000;
    if (path !== '.' && path !== '') {
      if (type === S_IFDIR) entries.push({ path, type: 'directory', mode: mode & 0o7777 });
      else if (type === S_IFLNK) entries.push({ path, type: 'symlink', target: body.toString('utf8') });
      else if (type === S_IFREG && nlink <= 1) entries.push({ path, type: 'file', data: Buffer.from(body), mode: mode & 0o7777 });
      else bad(`"${path}" is a hard link or a special file`);
    }
    at = dataAt + size + ((4 - (size % 4)) % 4);
  }
}

function record(ino: number, entry: CpioEntry): Buffer[] {
  switch (entry.type) {
    case 'directory':
      return header(entry.path, ino, S_IFDIR | (entry.mode ?? 0o755), 2, Buffer.alloc(0));
    case 'file':
      return header(entry.path, ino, S_IFREG | (entry.mode ?? 0o644), 1, Buffer.from(entry.data));
    case 'symlink':
      return header(entry.path, ino, S_IFLNK | 0o777, 1, Buffer.from(entry.target));
  }
}

function header(name: string, ino: number, mode: number, nlink: number, data: Buffer): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`);
  const fields = [ino, mode, 0, 0, nlink, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0];
  const head = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''));
  return [head, nameBytes, padding(head.length + nameBytes.length), data, padding(data.length)];
}

function padding(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function normalize(path: string): string {
  const clean = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (clean === '' || clean.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`initramfs: invalid path "${path}"`);
  }
  return clean;
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

export interface GuestImage {
  /** A statically linked busybox: the guest's shell, `insmod` and `ip`. */
  busybox: string;
  /** The /init script (see guest-init.ts). */
  init: string;
  /** Kernel modules in load order, as files on the host. */
  modules: readonly string[];
  /** The statically linked program the guest runs. */
  program: string;
  programArgs: readonly string[];
  /** The proxy's certificate chain and key (PEM), when it serves HTTPS. */
  certificate?: string;
}

/** The entry holding the proxy's PEM (mode 0600, like the file on the host). */
function certificateEntry(pem: string): CpioEntry {
  return { path: GUEST_PATHS.certificate, type: 'file', data: Buffer.from(pem), mode: 0o600 };
}

/**
 * A Unikraft proxy's initrd: its PEM as GUEST_PATHS.certificate, added to `base` (the app's
 * kraft-built rootfs) when it has one.
 */
export function initrdWithCertificate(base: string | undefined, pem: string): Buffer {
  const entries = base === undefined ? [] : readCpio(readFileSync(base), base);
  const entry = certificateEntry(pem);
  return writeCpio([...entries.filter((e) => e.path !== entry.path), entry]);
}

/** The entries of a microvm guest's initramfs: busybox, the modules, init, the program and its arguments. */
export async function guestInitramfsEntries(image: GuestImage): Promise<CpioEntry[]> {
  const moduleNames = image.modules.map((path) => path.slice(path.lastIndexOf('/') + 1));
  const badArg = image.programArgs.find((arg) => arg.includes('\n'));
  if (badArg !== undefined) throw new Error(`initramfs: program argument ${JSON.stringify(badArg)} contains a newline`);
  return [
    { path: 'bin/busybox', type: 'file', data: await readFile(image.busybox), mode: 0o755 },
    { path: 'bin/sh', type: 'symlink', target: 'busybox' },
    { path: 'init', type: 'file', data: Buffer.from(image.init), mode: 0o755 },
    { path: 'proc', type: 'directory' },
    { path: 'sys', type: 'directory' },
    { path: 'dev', type: 'directory' },
    ...(await Promise.all(image.modules.map(async (file, i) => ({
      path: `${GUEST_PATHS.modulesDir}/${moduleNames[i]!}`,
      type: 'file' as const,
      data: await readFile(file),
    })))),
    { path: GUEST_PATHS.moduleList, type: 'file', data: Buffer.from(moduleNames.map((m) => `${m}\n`).join('')) },
    { path: GUEST_PATHS.program, type: 'file', data: await readFile(image.program), mode: 0o755 },
    { path: GUEST_PATHS.args, type: 'file', data: Buffer.from(image.programArgs.map((a) => `${a}\n`).join('')) },
    ...(image.certificate === undefined ? [] : [certificateEntry(image.certificate)]),
  ];
}
