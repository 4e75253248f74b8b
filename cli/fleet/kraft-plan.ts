/**
 * The kraft side of a fleet plan, as plain data: every `kraft` command line `up` and `down`
 * run (build, network, one `kraft run` per machine, and the `ps`, `stop`, `rm` and `net rm` that
 * `down` runs from the state alone, by machine and network name), each machine's address and
 * arguments, and where kraft leaves the built artifacts. The flags are the ones kraftkit
 * documents (internal/cli/kraft/{build,run,ps,stop,remove,net}); `--no-prompt` goes on every
 * call because uproxy has no terminal to answer kraft's questions with.
 */
import { join } from 'node:path';
import { machinePorts, type HttpsMode } from '../config/schema.js';
import { commandLine, renderOptions, type CommandLine, type Options } from './argv.js';
import { planAddressing } from './addressing.js';
import { GUEST_PATHS } from './guest-paths.js';
import { backendArgs, instanceName, makeCommand, proxyArgs, type FleetPlan, type Role } from './plan.js';

export const KRAFT = 'kraft';
export const KRAFT_PLAT = 'qemu';
export const KRAFT_ARCH = 'x86_64';

/** kraft's own build directory inside an app (kraftkit: unikraft.BuildDir). */
export const KRAFT_BUILD_DIR = '.unikraft/build';

/** Kraftfile of the elfloader variant whose rootfs is a plain directory (no BuildKit). */
export const ROOTFS_DIR_KRAFTFILE = 'Kraftfile.rootfs-dir';

/**
 * Limits of the Unikraft kernel command line (lib/ukboot): CONFIG_LIBUKBOOT_MAXNBARGS argv
 * slots and CONFIG_LIBUKBOOT_CMDLINE_MAX_LEN bytes. The native templates raise the slots to
 * 256; the prebuilt base kernel of elfloader keeps the default 60.
 */
export const CMDLINE_MAX_LEN = 4096;
export const MAX_ARGS = { native: 256, elfloader: 60 } as const;

const COMMON: Options = { 'no-prompt': true, 'log-type': 'basic' };
const TARGET: Options = { plat: KRAFT_PLAT, arch: KRAFT_ARCH };

export interface KraftApp {
  label: Role;
  dir: string;
  /** `--kraftfile`, for the directory-rootfs variant; kraft's default `Kraftfile` otherwise. */
  kraftfile?: string;
  /** What a successful build leaves: the kernel (native) or the rootfs CPIO (elfloader). */
  artifact: string;
  /** Run before `kraft build` (fills rootfs/ for the directory-rootfs variant). */
  prepare?: CommandLine;
  build: CommandLine;
}

export interface KraftMachinePlan {
  name: string;
  role: Role;
  /** kraft's machine name: `<fleet>-<machine>`, so two fleets never collide. */
  instance: string;
  ip: string;
  /** `ip:port` it serves on (the client port for the proxy). */
  serves: string;
  memoryMiB: number;
  app: KraftApp;
  args: string[];
  /**
   * The proxy serving HTTPS: the initrd uproxy writes for it (mode 0600) and gives `kraft run
   * --rootfs`, holding the certificate and key (`certificate`, the host's PEM file) as
   * GUEST_PATHS.certificate, plus, for elfloader, the app's own built rootfs (`base`).
   */
  rootfs?: { path: string; base?: string; certificate: string };
  run: CommandLine;
}

export interface KraftNetworkPlan {
  /** The bridge's name, which is also kraft's network name. */
  name: string;
  gateway: string;
  prefix: number;
  /** Who creates the bridge: `kraft net create`, or uproxy's own net/ code (qemu runtime). */
  manager: 'kraft' | 'uproxy';
  create: CommandLine;
}

export interface KraftFleetPlan {
  network: KraftNetworkPlan;
  apps: KraftApp[];
  /** Backends first, the proxy last: it health-checks them as soon as it starts. */
  machines: KraftMachinePlan[];
  proxy: { listen: string; admin: string; tls?: HttpsMode };
}

export interface KraftInputs {
  /** The `name:` of each app's Kraftfile: the native kernel is named after it. */
  kraftfileNames: Readonly<Record<Role, string>>;
  /** `.uproxy` of the project: the proxy's initrd goes in `kraft/`. */
  stateDir: string;
}

export function kraftCommand(words: readonly string[], options: Options, trailing: readonly string[] = []): CommandLine {
  return commandLine(KRAFT, words, renderOptions({ ...COMMON, ...options }, '--'), trailing);
}

/** `kraft ps` of every machine, stopped ones too, as JSON with their PIDs. */
export function kraftListCommand(): CommandLine {
  return kraftCommand(['ps'], { all: true, long: true, output: 'json' });
}

export function kraftStopCommand(instance: string): CommandLine {
  return kraftCommand(['stop'], {}, [instance]);
}

export function kraftRemoveCommand(instance: string): CommandLine {
  return kraftCommand(['rm'], {}, [instance]);
}

export function kraftNetRemoveCommand(network: string): CommandLine {
  return kraftCommand(['net', 'rm'], {}, [network]);
}

/** Where `kraft build --plat qemu --arch x86_64` leaves a native app's kernel: named after the Kraftfile's `name:`. */
export function nativeKernelPath(appDir: string, kraftfileName: string): string {
  return join(appDir, KRAFT_BUILD_DIR, `${kraftfileName}_${KRAFT_PLAT}-${KRAFT_ARCH}`);
}

/** Where kraft leaves the initrd it builds from a Kraftfile's `rootfs:`. */
export function rootfsCpioPath(appDir: string): string {
  return join(appDir, KRAFT_BUILD_DIR, `initramfs-${KRAFT_ARCH}.cpio`);
}

export function kraftBuildCommand(appDir: string, kraftfile?: string): CommandLine {
  return kraftCommand(['build'], { ...TARGET, kraftfile }, [appDir]);
}

export function planKraftFleet(plan: FleetPlan, inputs: KraftInputs): KraftFleetPlan {
  const { config } = plan;
  const { mode } = config.unikraft;
  const addressing = planAddressing(plan.fleet, config.network.subnet, plan.proxy.name, plan.backends.map((b) => b.name));
  const prefix = addressing.subnet.prefix;
  const network: KraftNetworkPlan = {
    name: config.network.bridge,
    gateway: addressing.gateway,
    prefix,
    manager: config.unikraft.network,
    create: kraftCommand(['net', 'create'], { network: `${addressing.gateway}/${prefix}` }, [config.network.bridge]),
  };

  const app = (label: Role, dir: string): KraftApp => {
    const directoryRootfs = mode === 'elfloader' && config.unikraft.rootfs === 'directory';
    const kraftfile = directoryRootfs ? ROOTFS_DIR_KRAFTFILE : undefined;
    const artifact = mode === 'native' ? nativeKernelPath(dir, inputs.kraftfileNames[label]) : rootfsCpioPath(dir);
    return {
      label,
      dir,
      kraftfile,
      artifact,
      prepare: directoryRootfs ? makeCommand(dir, { makefile: 'rootfs.mk' }) : undefined,
      build: kraftBuildCommand(dir, kraftfile),
    };
  };
  const proxyApp = app('proxy', plan.proxy.app.dir);
  const backendApp = app('backend', plan.backends[0]?.app.dir ?? config.backends.app);

  const { backend: backendPort, proxy: proxyPort, admin: adminPort } = machinePorts(config);
  const machine = (name: string, role: Role, ip: string, serves: string, memoryMiB: number, machineApp: KraftApp, programArgs: string[]): KraftMachinePlan => {
    const instance = instanceName(plan.fleet, name);
    // elfloader: the kernel runs a program from the rootfs, named first as in the Kraftfile's cmd.
    const args = mode === 'elfloader' ? [`/${role === 'proxy' ? 'uproxy-proxy' : 'backend'}`, ...programArgs] : programArgs;
    const rootfs = role === 'proxy' && plan.proxyCertFile !== null
      ? { path: join(inputs.stateDir, 'kraft', `${name}.cpio`), base: mode === 'elfloader' ? machineApp.artifact : undefined, certificate: plan.proxyCertFile }
      : undefined;
    return {
      name,
      role,
      instance,
      ip,
      serves,
      memoryMiB,
      app: machineApp,
      args,
      rootfs,
      run: kraftCommand(
        ['run'],
        {
          detach: true,
          name: instance,
          network: `${network.name}:${ip}/${prefix}:${network.gateway}`,
          memory: `${memoryMiB}Mi`,
          ...TARGET,
          kraftfile: machineApp.kraftfile,
          rootfs: rootfs?.path,
        },
        [machineApp.dir, '--', ...args],
      ),
    };
  };

  const backends = plan.backends.map((b, i) => {
    const ip = addressing.backends[i]!.ip;
    const serves = `${ip}:${backendPort}`;
    return machine(b.name, 'backend', ip, serves, config.unikraft.backendMemoryMiB, backendApp, backendArgs(b.name, serves));
  });
  const proxyIp = addressing.proxy.ip;
  const listeners = { listen: `0.0.0.0:${proxyPort}`, admin: `${proxyIp}:${adminPort}`, backendNetwork: config.network.subnet };
  const endpoints = backends.map((b) => ({ name: b.name, address: b.serves }));
  const certFile = plan.proxyCertFile === null ? null : `/${GUEST_PATHS.certificate}`;
  const proxy = machine(plan.proxy.name, 'proxy', proxyIp, `${proxyIp}:${proxyPort}`, config.unikraft.proxyMemoryMiB, proxyApp,
    proxyArgs(config, listeners, endpoints, certFile));

  return {
    network,
    apps: [proxyApp, backendApp],
    machines: [...backends, proxy],
    proxy: { listen: proxy.serves, admin: listeners.admin, ...(config.proxy.tls.mode === 'off' ? {} : { tls: config.proxy.tls.mode }) },
  };
}

/** What a Unikraft machine's kernel command line is made of: `<instance> netdev.ip=... -- <args>`. */
export interface UnikraftCommandLine {
  name: string;
  instance: string;
  ip: string;
  args: readonly string[];
}

/**
 * Why a machine's arguments would not reach its program intact, or null. Unikraft splits the
 * kernel command line on spaces (no quoting) and drops what exceeds its argv slots or length.
 */
export function kernelCommandLineProblem(machine: UnikraftCommandLine, mode: keyof typeof MAX_ARGS): string | null {
  const bad = machine.args.find((arg) => arg === '' || /[\s"']/.test(arg));
  if (bad !== undefined) return `argument ${JSON.stringify(bad)} of ${machine.name} contains a space or a quote, which a Unikraft command line cannot carry`;
  // The kernel's own words: its name, netdev.ip=..., and the ` -- ` separator.
  const words = machine.args.length + 3;
  const length = [machine.instance, `netdev.ip=${machine.ip}/32:0.0.0.0:::`, '--', ...machine.args].join(' ').length;
  if (words > MAX_ARGS[mode]) {
    return `${machine.name} needs ${words} kernel command-line words but a ${mode} Unikraft kernel parses at most ${MAX_ARGS[mode]} (CONFIG_LIBUKBOOT_MAXNBARGS)`;
  }
  if (length >= CMDLINE_MAX_LEN) {
    return `${machine.name}'s kernel command line is ${length} bytes, over Unikraft's ${CMDLINE_MAX_LEN} (CONFIG_LIBUKBOOT_CMDLINE_MAX_LEN)`;
  }
  return null;
}
