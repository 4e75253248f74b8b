/**
 * The Linux kernel a `microvm` guest boots, and the virtio-net modules that must go into its
 * initramfs. Where the kernel comes from, in order: `qemu.kernel` from the config, a readable
 * host `/boot/vmlinuz-*`, or Debian's `linux-image-cloud-amd64` fetched with
 * `apt-get download` into uproxy's cache and unpacked with `dpkg-deb -x`.
 * Debian's cloud kernel builds every virtio driver as a module and ships no `modules.dep`,
 * so the dependency order comes from `depmod -b` run on the unpacked tree.
 */
import { existsSync } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { homedir, release } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { commandLine, renderOptions, toShell, type CommandLine } from '../fleet/argv.js';

export interface GuestKernel {
  kernel: string;
  version: string;
  /** Kernel modules to load in the guest, in load order (empty when all are built in). */
  modules: string[];
  /** Where it came from, for `doctor` and progress output. */
  source: 'config' | 'host' | 'debian-package';
}

export interface KernelSearch {
  /** `qemu.kernel` from the config. */
  configKernel?: string;
  /** A root holding `lib/modules/<version>` for the configured kernel; defaults to `/`. */
  configModulesRoot?: string;
  cacheDir?: string;
  /** Set false to stop before any download (used by `doctor`). */
  allowDownload?: boolean;
}

/** The drivers a guest needs for its one NIC on either board (virtio-pci on `pc`, virtio-mmio on `microvm`). */
export const NETWORK_MODULES = ['virtio_pci', 'virtio_mmio', 'virtio_net'] as const;

export const DEBIAN_KERNEL_PACKAGE = 'linux-image-cloud-amd64';

export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'uproxy');
}

export async function findGuestKernel(search: KernelSearch = {}): Promise<GuestKernel> {
  if (search.configKernel !== undefined) {
    const version = await kernelVersion(search.configKernel);
    const root = search.configModulesRoot ?? '/';
    return { kernel: search.configKernel, version, modules: await networkModules(root, version), source: 'config' };
  }
  const host = await hostKernel();
  if (host !== undefined) {
    return { kernel: host.kernel, version: host.version, modules: await networkModules('/', host.version), source: 'host' };
  }
  const cacheDir = search.cacheDir ?? defaultCacheDir();
  let root = await cachedDebianKernel(cacheDir);
  if (root === undefined) {
    if (search.allowDownload === false) {
      throw new Error(`no kernel for microvm guests: set "qemu.kernel" in uproxy.json, or let uproxy fetch Debian's ${DEBIAN_KERNEL_PACKAGE} (needs apt-get)`);
    }
    root = await fetchDebianKernel(cacheDir);
  }
  const version = await onlyEntry(join(root, 'lib/modules'));
  return {
    kernel: join(root, 'boot', `vmlinuz-${version}`),
    version,
    modules: await networkModules(root, version),
    source: 'debian-package',
  };
}

/** The version string a bzImage carries in its setup header (what `file` prints). */
export async function kernelVersion(kernel: string): Promise<string> {
  let header: Buffer;
  try {
    const handle = await open(kernel, 'r');
    try {
      header = Buffer.alloc(0x4000);
      await handle.read(header, 0, header.length, 0);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new Error(`cannot read kernel ${kernel}: ${(error as Error).message}; set "qemu.kernel" to a readable bzImage`);
  }
  if (header.toString('latin1', 0x202, 0x206) !== 'HdrS') {
    throw new Error(`${kernel} is not a Linux bzImage (no "HdrS" setup header); set "qemu.kernel" to a bzImage such as /boot/vmlinuz-*`);
  }
  const offset = header.readUInt16LE(0x20e) + 0x200;
  const text = header.toString('latin1', offset, header.indexOf(0, offset));
  const version = text.split(' ')[0];
  if (!version) throw new Error(`${kernel}: its setup header holds no version string`);
  return version;
}

async function hostKernel(): Promise<{ kernel: string; version: string } | undefined> {
  let names: string[];
  try {
    names = (await readdir('/boot')).filter((name) => name.startsWith('vmlinuz-'));
  } catch {
    return undefined;
  }
  const running = `vmlinuz-${release()}`;
  names.sort((a, b) => (a === running ? -1 : b === running ? 1 : b.localeCompare(a, 'en', { numeric: true })));
  for (const name of names) {
    const kernel = join('/boot', name);
    try {
      await access(kernel, constants.R_OK);
      const version = name.slice('vmlinuz-'.length);
      if (existsSync(join('/lib/modules', version))) return { kernel, version };
    } catch {
      continue;
    }
  }
  return undefined;
}

/** A kernel unpacked by an earlier run (the newest), so `up` needs no package index once it has one. */
async function cachedDebianKernel(cacheDir: string): Promise<string | undefined> {
  const dir = join(cacheDir, 'kernel');
  const names = existsSync(dir) ? await readdir(dir) : [];
  const complete = names.filter((name) => !name.endsWith('.partial') && existsSync(join(dir, name, 'boot')));
  complete.sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  return complete[0] === undefined ? undefined : join(dir, complete[0]);
}

/**
 * Unpacks Debian's cloud kernel into `<cacheDir>/kernel/<package>/` (once) and returns that
 * root. The metapackage only depends on the versioned image package, so that is what is fetched.
 */
export async function fetchDebianKernel(cacheDir: string): Promise<string> {
  const packageName = await resolveMetapackage(DEBIAN_KERNEL_PACKAGE);
  const root = join(cacheDir, 'kernel', packageName);
  if (existsSync(join(root, 'boot'))) return root;
  const work = `${root}.partial`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  await run(commandLine('apt-get', ['download', packageName]), work);
  const deb = (await readdir(work)).find((name) => name.endsWith('.deb'));
  if (deb === undefined) throw new Error(`apt-get download ${packageName} left no .deb in ${work}`);
  await run(commandLine('dpkg-deb', ['-x', deb, 'root']), work);
  const version = await onlyEntry(join(work, 'root/lib/modules'));
  await run(commandLine('depmod', renderOptions({ b: join(work, 'root') }, '-'), [version]), work);
  await rm(root, { recursive: true, force: true });
  await rename(join(work, 'root'), root);
  await rm(work, { recursive: true, force: true });
  return root;
}

async function resolveMetapackage(name: string): Promise<string> {
  const output = await run(commandLine('apt-cache', ['depends', name]));
  const match = /Depends:\s*(linux-image-\S+)/.exec(output);
  if (!match) throw new Error(`apt-cache knows no ${name} here; install a kernel or set "qemu.kernel" in uproxy.json`);
  return match[1]!;
}

/**
 * The `.ko` files for NETWORK_MODULES and their dependencies, each after everything it
 * depends on (loading `virtio` before `virtio_ring` fails with "unknown symbol").
 */
export async function networkModules(root: string, version: string): Promise<string[]> {
  const dir = join(root, 'lib/modules', version);
  const builtin = await readLines(join(dir, 'modules.builtin'));
  const depText = await readFile(join(dir, 'modules.dep'), 'utf8').catch(() => {
    throw new Error(`${dir} has no modules.dep: run \`depmod -b ${root} ${version}\``);
  });
  const order = moduleLoadOrder(depText, NETWORK_MODULES.filter((m) => !builtin.some((line) => moduleName(line) === m)));
  return order.map((relative) => join(dir, relative));
}

/** Dependency-first load order from the text of a `modules.dep` file. */
export function moduleLoadOrder(modulesDep: string, wanted: readonly string[]): string[] {
  const deps = new Map<string, { path: string; needs: string[] }>();
  for (const line of modulesDep.split('\n')) {
    const [path, rest] = line.split(':');
    if (!path || rest === undefined) continue;
    deps.set(moduleName(path), { path, needs: rest.trim().split(/\s+/).filter(Boolean).map(moduleName) });
  }
  const order: string[] = [];
  const visiting = new Set<string>();
  const visit = (name: string, neededBy: string): void => {
    const module = deps.get(name);
    if (module === undefined) throw new Error(`kernel module ${name} (needed by ${neededBy}) is not in modules.dep: this kernel cannot drive a virtio NIC`);
    if (order.includes(module.path) || visiting.has(name)) return;
    visiting.add(name);
    for (const need of module.needs) visit(need, name);
    order.push(module.path);
  };
  for (const name of wanted) visit(name, 'the guest NIC');
  for (const path of order) {
    if (/\.ko\.(xz|zst|gz)$/.test(path)) throw new Error(`kernel module ${path} is compressed; busybox insmod needs plain .ko files`);
  }
  return order;
}

/** `kernel/drivers/net/virtio_net.ko` -> `virtio_net` (the kernel treats - and _ alike). */
function moduleName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1).replace(/\.ko(\.\w+)?$/, '').replaceAll('-', '_');
}

async function readLines(file: string): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

async function onlyEntry(dir: string): Promise<string> {
  const entries = await readdir(dir);
  if (entries.length !== 1) throw new Error(`expected one kernel version in ${dir}, found: ${entries.join(', ') || 'none'}`);
  return entries[0]!;
}

async function run(command: CommandLine, cwd?: string): Promise<string> {
  const result = await execa(command.file, command.args, { cwd, reject: false, all: true });
  if (result.exitCode !== 0) {
    throw new Error(`\`${toShell(command)}\` failed (exit ${result.exitCode ?? result.signal}):\n${result.all ?? ''}`);
  }
  return result.stdout;
}
