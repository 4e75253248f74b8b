/**
 * What this host can run, for `uproxy doctor` (core/doctor.ts picks the checks a runtime
 * needs) and for `--accel auto`. Each check says what it found and, when it failed, what to do
 * about it. The KVM check boots a real (tiny) guest: on nested setups /dev/kvm opens fine and
 * guests then hang, so opening it proves nothing.
 */
import { constants, existsSync } from 'node:fs';
import { access, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import * as z from 'zod';
import type { CommandLine } from '../fleet/argv.js';
import { QEMU_BINARY, qemuProbeCommand, type Accel, type AccelChoice } from '../fleet/qemu-command.js';
import { hasNetAdmin, NET_ADMIN_FIX } from '../net/capability.js';
import { writeCpio } from './initramfs.js';
import { findOnPath } from './processes.js';
import { DEBIAN_KERNEL_PACKAGE, defaultCacheDir, findGuestKernel } from './kernel.js';

export const BUSYBOX = '/bin/busybox';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do when not ok. */
  fix?: string;
}

/** The probe guest: a boot sector that prints a line on the first serial port, then exits QEMU through isa-debug-exit. */
const PROBE_MESSAGE = 'uproxy-probe-ok\n';
const PROBE_EXIT_PORT = 0xf4;
const PROBE_EXIT_VALUE = 0x21;
/** isa-debug-exit turns `out 0xf4, v` into exit status (v << 1) | 1. */
const PROBE_EXIT_STATUS = (PROBE_EXIT_VALUE << 1) | 1;

export function probeBootSector(): Buffer {
  const code = [
    0xfa, //             cli
    0x31, 0xc0, //       xor ax, ax
    0x8e, 0xd8, //       mov ds, ax
    0xfc, //             cld
    0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1 data register)
    0xbe, 0x00, 0x00, // mov si, message (patched below)
    0xac, //             next: lodsb
    0x84, 0xc0, //       test al, al
    0x74, 0x03, //       jz done
    0xee, //             out dx, al
    0xeb, 0xf8, //       jmp next
    0xb0, PROBE_EXIT_VALUE, // done: mov al, value
    0xe6, PROBE_EXIT_PORT, //  out 0xf4, al
    0xf4, //             halt: hlt
    0xeb, 0xfd, //       jmp halt
  ];
  const messageAddress = 0x7c00 + code.length;
  code[10] = messageAddress & 0xff;
  code[11] = messageAddress >> 8;
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector, 0);
  Buffer.from(`${PROBE_MESSAGE}\0`, 'latin1').copy(sector, code.length);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

async function linuxProbeInitramfs(): Promise<Buffer> {
  // No /dev/console node in the archive: the marker goes to the serial port once devtmpfs is up.
  const init = [
    '#!/bin/sh',
    '/bin/busybox mount -t devtmpfs devtmpfs /dev',
    `/bin/busybox printf '${PROBE_MESSAGE.replace('\n', '\\n')}' > /dev/ttyS0`,
    '/bin/busybox poweroff -f',
    '',
  ].join('\n');
  return writeCpio([
    { path: 'bin/busybox', type: 'file', data: await readFile(BUSYBOX), mode: 0o755 },
    { path: 'bin/sh', type: 'symlink', target: 'busybox' },
    { path: 'init', type: 'file', data: Buffer.from(init), mode: 0o755 },
    { path: 'dev', type: 'directory' },
  ]);
}

/**
 * Boots a probe guest (the Linux kernel given, else the boot sector); ok when it ran to its
 * end within the deadline.
 */
export async function probeGuestBoots(accel: Accel, deadlineMs: number, kernel?: string): Promise<{ ok: boolean; timedOut?: boolean; detail: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'uproxy-probe-'));
  try {
    const log = join(dir, 'serial.log');
    let command: CommandLine;
    let expectedStatus = PROBE_EXIT_STATUS;
    if (kernel === undefined) {
      const image = join(dir, 'probe.img');
      await writeFile(image, probeBootSector());
      command = qemuProbeCommand(accel, { image, exitPort: PROBE_EXIT_PORT }, log);
    } else {
      const initrd = join(dir, 'probe.cpio');
      await writeFile(initrd, await linuxProbeInitramfs());
      // A boot sector alone is not enough: on nested KVM it runs while Linux crashes.
      command = qemuProbeCommand(accel, { kernel, initrd }, log);
      expectedStatus = 0;
    }
    const started = performance.now();
    // execa kills the QEMU it started (and only that one) when the deadline passes.
    const result = await execa(command.file, command.args, { reject: false, timeout: deadlineMs, stdin: 'ignore', all: true });
    const elapsed = Math.round(performance.now() - started);
    const printed = existsSync(log) && (await readFile(log, 'latin1')).includes(PROBE_MESSAGE.trim());
    const what = kernel === undefined ? 'a boot-sector probe (no Linux kernel cached yet, so Linux was not tried)' : 'a Linux probe guest';
    if (result.exitCode === expectedStatus && printed) return { ok: true, detail: `${what} booted under ${accel} in ${elapsed} ms` };
    if (result.timedOut) return { ok: false, timedOut: true, detail: `a probe guest did not finish booting under ${accel} within ${deadlineMs} ms (nested virtualization often hangs like this)` };
    return { ok: false, detail: `the probe guest failed under ${accel}: ${(result.all ?? '').trim().split('\n').at(-1) || `exit ${result.exitCode}`}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const KVM_PROBE_DEADLINE_MS = 10_000;

/**
 * `--accel auto`: KVM only when /dev/kvm opens and a probe guest boots under it in time. The
 * probe's verdict is kept until the host reboots: where KVM guests hang, every probe costs the
 * whole deadline, and that answer does not change between two `up`s.
 */
export async function chooseAccel(requested: AccelChoice, kernel?: string): Promise<{ accel: Accel; reason: string }> {
  if (requested !== 'auto') return { accel: requested, reason: `--accel ${requested}` };
  const kvm = await checkKvm(kernel, { reuse: true });
  return kvm.ok ? { accel: 'kvm', reason: kvm.detail } : { accel: 'tcg', reason: `using TCG (software emulation, slower): ${kvm.detail}` };
}

const kvmVerdict = z.object({ bootId: z.string(), kernel: z.string().nullable(), ok: z.boolean(), detail: z.string() });

function kvmVerdictFile(): string {
  return join(defaultCacheDir(), 'kvm-probe.json');
}

async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
}

async function rememberedVerdict(kernel: string | null): Promise<{ ok: boolean; detail: string } | undefined> {
  try {
    const seen = kvmVerdict.safeParse(JSON.parse(await readFile(kvmVerdictFile(), 'utf8')));
    if (seen.success && seen.data.bootId === (await bootId()) && seen.data.kernel === kernel) return seen.data;
  } catch {
    // No verdict yet (or an unreadable one): probe.
  }
  return undefined;
}

/** Only verdicts about KVM itself are kept: a probe that failed for another reason (say, no QEMU yet) is not. */
async function rememberVerdict(kernel: string | null, boot: { ok: boolean; timedOut?: boolean; detail: string }): Promise<void> {
  if (!boot.ok && !boot.timedOut) return;
  await mkdir(defaultCacheDir(), { recursive: true });
  await writeFile(kvmVerdictFile(), `${JSON.stringify({ bootId: await bootId(), kernel, ok: boot.ok, detail: boot.detail })}\n`);
}

/** With `reuse`, this boot's earlier verdict stands in for a new probe (`uproxy doctor` always probes afresh). */
export async function checkKvm(kernel?: string, { reuse = false } = {}): Promise<Check> {
  const name = 'KVM';
  const fix = 'uproxy will use TCG (--accel tcg); nothing to do unless you need the speed';
  try {
    const handle = await open('/dev/kvm', 'r+');
    await handle.close();
  } catch (error) {
    return { name, ok: false, detail: `/dev/kvm cannot be opened (${(error as NodeJS.ErrnoException).code})`, fix: 'enable virtualization in the firmware, load kvm_intel/kvm_amd, or add your user to the kvm group; TCG works without it, slower' };
  }
  const remembered = reuse ? await rememberedVerdict(kernel ?? null) : undefined;
  if (remembered) {
    const detail = `${remembered.detail} (probed earlier since this boot; \`uproxy doctor\` probes again)`;
    return { name, ok: remembered.ok, detail, fix: remembered.ok ? undefined : fix };
  }
  const boot = await probeGuestBoots('kvm', KVM_PROBE_DEADLINE_MS, kernel);
  await rememberVerdict(kernel ?? null, boot);
  return { name, ok: boot.ok, detail: boot.detail, fix: boot.ok ? undefined : fix };
}

export async function checkQemu(): Promise<Check> {
  const result = await execa(QEMU_BINARY, ['--version'], { reject: false });
  if (result.failed) return { name: 'QEMU', ok: false, detail: `${QEMU_BINARY} not found`, fix: 'apt-get install qemu-system-x86' };
  return { name: 'QEMU', ok: true, detail: result.stdout.split('\n')[0] ?? QEMU_BINARY };
}

export async function checkTcg(kernel?: string): Promise<Check> {
  const boot = await probeGuestBoots('tcg', 60_000, kernel);
  return { name: 'TCG', ok: boot.ok, detail: boot.detail, fix: boot.ok ? undefined : `check that ${QEMU_BINARY} runs at all` };
}

export async function checkTun(): Promise<Check> {
  try {
    await access('/dev/net/tun', constants.R_OK | constants.W_OK);
    return { name: 'tun/tap', ok: true, detail: '/dev/net/tun is usable' };
  } catch {
    return { name: 'tun/tap', ok: false, detail: '/dev/net/tun is missing or not writable', fix: 'modprobe tun (and run uproxy as root)' };
  }
}

export async function checkBridge(): Promise<Check> {
  if (existsSync('/sys/module/bridge')) return { name: 'bridge', ok: true, detail: 'the bridge driver is loaded' };
  const result = await execa('modinfo', ['-n', 'bridge'], { reject: false });
  return result.exitCode === 0
    ? { name: 'bridge', ok: true, detail: 'the bridge driver is available as a module' }
    : { name: 'bridge', ok: false, detail: 'no bridge driver in this kernel', fix: 'use a kernel with CONFIG_BRIDGE, or the host runtime' };
}

export function checkNetAdmin(): Check {
  return hasNetAdmin()
    ? { name: 'CAP_NET_ADMIN', ok: true, detail: 'may create bridges, taps and nftables rules' }
    : { name: 'CAP_NET_ADMIN', ok: false, detail: 'missing', fix: NET_ADMIN_FIX };
}

export async function checkGuestKernel(): Promise<Check & { kernel?: string }> {
  try {
    const kernel = await findGuestKernel({ allowDownload: false, cacheDir: defaultCacheDir() });
    return { name: 'microvm kernel', ok: true, detail: `${kernel.kernel} (${kernel.source}, ${kernel.modules.length} modules to load)`, kernel: kernel.kernel };
  } catch {
    const apt = await execa('apt-cache', ['show', DEBIAN_KERNEL_PACKAGE], { reject: false });
    return apt.exitCode === 0
      ? { name: 'microvm kernel', ok: true, detail: `none on this host; \`up\` will fetch Debian's ${DEBIAN_KERNEL_PACKAGE} with apt-get download` }
      : { name: 'microvm kernel', ok: false, detail: 'no readable /boot/vmlinuz-* and no apt-get', fix: 'set "qemu.kernel" in uproxy.json to a bzImage with virtio-net' };
  }
}

export async function checkBusybox(): Promise<Check> {
  const ok = existsSync(BUSYBOX) && (await isStaticElf(BUSYBOX));
  return ok
    ? { name: 'busybox-static', ok: true, detail: `${BUSYBOX} is statically linked (the microvm guests' shell)` }
    : { name: 'busybox-static', ok: false, detail: `${BUSYBOX} is missing or dynamically linked`, fix: 'apt-get install busybox-static' };
}

const KRAFT_INSTALL = 'install kraftkit: `curl -sSfL https://get.kraftkit.sh | sh` (see https://unikraft.org/docs/cli/install); without it use `"qemu": {"guest": "microvm"}`';

/** kraft: needed by the kraft runtime, and to build the kernels of the qemu runtime's unikraft guests. */
export async function checkKraft(env: NodeJS.ProcessEnv = process.env): Promise<Check> {
  const name = 'kraft';
  const result = await execa('kraft', ['version'], { reject: false, env, extendEnv: false, stdin: 'ignore', timeout: 20_000 });
  if (result.exitCode === 0) return { name, ok: true, detail: result.stdout.split('\n').find((line) => line.trim())?.trim() ?? 'kraft' };
  if (result.exitCode === undefined && /ENOENT/.test(result.originalMessage ?? '')) {
    return { name, ok: false, detail: 'not installed (no kraft on PATH): the kraft runtime and building unikraft guests need it', fix: KRAFT_INSTALL };
  }
  const said = `${result.stderr || result.stdout}`.trim().split('\n').at(-1) ?? '';
  return { name, ok: false, detail: `\`kraft version\` failed (${result.exitCode === undefined ? 'did not run' : `exit ${result.exitCode}`})${said ? `: ${said}` : ''}`, fix: KRAFT_INSTALL };
}

const BUILDKIT_FIX =
  'run BuildKit, e.g. `docker run -d --name buildkitd --privileged moby/buildkit:latest` and `export KRAFTKIT_BUILDKIT_HOST=docker-container://buildkitd`; ' +
  'or use the directory rootfs, which needs none (`"unikraft": {"rootfs": "directory"}`)';

/**
 * BuildKit, which kraft needs to turn a Dockerfile rootfs (elfloader apps) into an initrd:
 * `KRAFTKIT_BUILDKIT_HOST`, kraftkit's `buildkit_host` setting, or a buildkitd socket in its
 * usual places. Only unix sockets can be checked from here; other addresses are reported as set.
 */
export async function checkBuildkit(env: NodeJS.ProcessEnv = process.env, home = homedir()): Promise<Check> {
  const name = 'BuildKit';
  const configured = env.KRAFTKIT_BUILDKIT_HOST
    ? { address: env.KRAFTKIT_BUILDKIT_HOST, where: 'KRAFTKIT_BUILDKIT_HOST' }
    : await kraftkitBuildkitSetting(join(env.XDG_CONFIG_HOME ?? join(home, '.config'), 'kraftkit', 'config.yaml'));
  if (configured) {
    if (!configured.address.startsWith('unix://')) return { name, ok: true, detail: `${configured.where} is ${configured.address} (not checked: only unix sockets can be)` };
    const socket = configured.address.slice('unix://'.length);
    return (await socketAnswers(socket))
      ? { name, ok: true, detail: `buildkitd answers on ${socket} (${configured.where})` }
      : { name, ok: false, detail: `${configured.where} is ${configured.address}, but nothing listens on ${socket}`, fix: `start buildkitd there, or ${BUILDKIT_FIX}` };
  }
  const sockets = ['/run/buildkit/buildkitd.sock', ...(env.XDG_RUNTIME_DIR ? [join(env.XDG_RUNTIME_DIR, 'buildkit/buildkitd.sock')] : [])];
  for (const socket of sockets) {
    if (await socketAnswers(socket)) {
      return { name, ok: true, detail: `buildkitd answers on ${socket}; if kraft does not find it: export KRAFTKIT_BUILDKIT_HOST=unix://${socket}` };
    }
  }
  return {
    name,
    ok: false,
    detail: `none found: KRAFTKIT_BUILDKIT_HOST is not set and no buildkitd listens on ${sockets.join(' or ')} (needed only for elfloader apps whose rootfs is a Dockerfile)`,
    fix: BUILDKIT_FIX,
  };
}

/** `buildkit_host:` from kraftkit's config file, if set. */
async function kraftkitBuildkitSetting(file: string): Promise<{ address: string; where: string } | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const match = /^buildkit_host:\s*["']?([^"'\s#]+)/m.exec(text);
  return match ? { address: match[1]!, where: `buildkit_host in ${file}` } : undefined;
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.setTimeout(2_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * What the default `host` runtime needs to build the proxy and the backend, then what the
 * qemu runtime's static builds add. Each with the Debian package that provides it.
 */
export function buildChecks(path = process.env.PATH ?? '', llhttpDir = '/usr/share/llhttp', opensslHeader = '/usr/include/openssl/ssl.h'): Check[] {
  const program = (name: string, what: string, pkg: string): Check => {
    const found = findOnPath(name, path);
    return found
      ? { name, ok: true, detail: `${found}: ${what}` }
      : { name, ok: false, detail: `not on PATH: ${what}`, fix: `apt-get install ${pkg}` };
  };
  const llhttp = existsSync(join(llhttpDir, 'llhttp.c'))
    ? { name: 'llhttp', ok: true, detail: `${llhttpDir}: the proxy's HTTP parser, compiled in` }
    : { name: 'llhttp', ok: false, detail: `no sources in ${llhttpDir}: the proxy compiles llhttp in`, fix: 'apt-get install node-llhttp' };
  const openssl = existsSync(opensslHeader)
    ? { name: 'openssl', ok: true, detail: `${opensslHeader}: the host build of the proxy links OpenSSL (its TLS listener)` }
    : { name: 'openssl', ok: false, detail: `no ${opensslHeader}: the host build of the proxy links OpenSSL (its TLS listener)`, fix: 'apt-get install libssl-dev' };
  return [
    program('cc', 'the host runtime compiles the proxy and the backend', 'build-essential'),
    program('make', 'every app is built with make', 'make'),
    llhttp,
    openssl,
    program('musl-gcc', 'the qemu runtime builds static guest programs (make static)', 'musl-tools'),
  ];
}

/** True for an ELF file without a program interpreter, i.e. one that runs in an empty initramfs. */
export async function isStaticElf(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(64);
    await handle.read(header, 0, 64, 0);
    if (header.toString('latin1', 0, 4) !== '\x7fELF' || header[4] !== 2) return false;
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    await handle.read(table, 0, table.length, phoff);
    const PT_INTERP = 3;
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === PT_INTERP) return false;
    return true;
  } finally {
    await handle.close();
  }
}
