/**
 * The `qemu` runtime: the proxy and every backend in its own QEMU machine, on a bridge uproxy
 * creates, one tap per machine. `up` reconciles like the host runtime: a machine whose QEMU
 * still runs the same command line and boot image is left alone, everything else is
 * (re)started, and machines the plan no longer has are stopped once the proxy no longer lists
 * them. Scaling keeps the proxy VM running: its backend list is not part of its fingerprint,
 * and the change goes through its admin API (backend-sync.ts); a proxy VM that does start
 * boots with the whole current list. Order of a change: network (recorded resource by resource),
 * then each machine (recorded as `starting` with its exact command line before QEMU runs),
 * then a wait until the proxy's admin API, reached from the host over the bridge, reports
 * every backend up. `down` asks the proxy to shut down through its admin API (its VM powers
 * off once it has drained), then each other machine to quit over QMP, kills what does not go
 * by its recorded PID, and removes exactly the network resources the state records.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import * as z from 'zod';
import { toShell } from '../fleet/argv.js';
import { planAddressing, tapName } from '../fleet/addressing.js';
import { networkCommands, ownerMark } from '../fleet/network-plan.js';
import { appBuildCommands, type FleetPlan, type Role } from '../fleet/plan.js';
import { qemuCommand } from '../fleet/qemu-command.js';
import { stateDir, writeFileAtomic } from '../files.js';
import { privateKey } from '../tls/pem.js';
import { pidExists } from '../pid.js';
import type { FleetState, MachineState } from '../fleet/state.js';
import { planVmFleet, staticBinary, type VmFleetPlan, type VmInputs, type VmMachinePlan } from '../fleet/vm-plan.js';
import { applyNetwork, removeNetwork, type NetworkResource } from '../net/apply.js';
import { requireNetAdmin } from '../net/capability.js';
import { localRunner } from '../net/exec.js';
import { UserError } from '../errors.js';
import { adminApiProxy, withoutLiveLists } from './backend-sync.js';
import { buildApp, fileHash, pendingBuilds, type AppBuild } from './build.js';
import { guestInit } from './guest-init.js';
import { guestInitramfsEntries, initrdWithCertificate, writeCpio } from './initramfs.js';
import { DEBIAN_KERNEL_PACKAGE, findGuestKernel } from './kernel.js';
import { findUnikraftBuilds } from './kraftfile.js';
import { processStatuses, reconcile, stopMachines, type MachineDriver, type Wanted } from './machines.js';
import { BUSYBOX, chooseAccel, isStaticElf } from './probe.js';
import { findProcessesByArgv, isOurProcess, logTail, sleep, waitForExit } from './processes.js';
import { machineMark, spawnMachine, stopMarked } from './process-groups.js';
import { releaseService, removeService, requireS6, serviceDir, serviceStatus, writeService, type RestartPolicy } from './s6.js';
import { shutdownProxy } from './proxy-shutdown.js';
import { QmpClient } from './qmp.js';
import { type DownOptions, type MachineStatus, type Runtime, type RuntimeContext, type UpOptions } from './runtime.js';

/** Four TCG guests booting at once on two cores take ~10 s; leave room for a loaded CI machine. */
const DEFAULT_UP_TIMEOUT_MS = 180_000;
const QEMU_START_TIMEOUT_MS = 30_000;

/** What this runtime keeps in `state.resources`. */
const qemuResources = z.object({
  owner: z.string(),
  network: z.array(z.object({ kind: z.enum(['bridge', 'tap', 'nft-table']), name: z.string() })),
  /** Hash of the network plan last applied completely: an unchanged network is not touched again. */
  networkFingerprint: z.string().optional(),
  /** What the machines were started with: `--accel auto` keeps it instead of probing KVM again. */
  accel: z.enum(['kvm', 'tcg']).optional(),
});
type QemuResources = z.infer<typeof qemuResources>;

const run = localRunner();

/** A planned machine with the boot image it would start with (microvm: the initramfs uproxy writes). */
interface VmStart {
  name: string;
  role: Role;
  machine: VmMachinePlan;
  initramfs?: Buffer;
}

export const runtime: Runtime = {
  name: 'qemu',
  keyOverAdminApi: false,

  async preflight(plan) {
    requireNetAdmin();
    if (plan.config.restart === 'on-failure') requireS6();
    planAddressing(plan.fleet, plan.config.network.subnet, plan.proxy.name, plan.backends.map((b) => b.name));
    // kraft builds these kernels; a missing one is reported now, not after the network is set up.
    if (plan.config.qemu.guest === 'unikraft') findUnikraftBuilds(plan);
  },

  async build(plan, ctx) {
    if (plan.config.qemu.guest === 'unikraft') {
      // kraft builds these; uproxy only boots them, so a missing one is reported, not built.
      await ctx.progress.step('find the kraft-built Unikraft kernels', async () => findUnikraftBuilds(plan));
      return;
    }
    await buildStaticPrograms(plan, ctx);
  },

  async up(plan, previous, ctx, options) {
    const resources = recordedResources(previous, plan.fleet);
    const { inputs, modules } = await bootInputs(plan, resources, ctx, options);
    const vm = planVmFleet(plan, inputs);
    resources.accel = inputs.accel;
    const state: FleetState = { version: 1, fleet: plan.fleet, runtime: 'qemu', proxy: vm.proxy, machines: previous?.machines ?? [], resources };
    const machines = driver(ctx, vm.proxy.admin, plan.config.restart);

    const networkFingerprint = sha256(JSON.stringify(vm.network));
    if (resources.networkFingerprint !== networkFingerprint) {
      ctx.saveState(state);
      try {
        await applyFleetNetwork(vm, state, resources, networkFingerprint, ctx);
      } catch (error) {
        await machines.cleanup(state);
        throw error;
      }
    }
    mkdirSync(vmDir(ctx), { recursive: true });
    mkdirSync(join(stateDir(ctx.projectDir), 'logs'), { recursive: true });
    const timeoutMs = options.timeoutMs ?? DEFAULT_UP_TIMEOUT_MS;
    const backends = vm.machines.filter((m) => m.role === 'backend').map((m) => ({ name: m.name, address: m.serves }));
    return reconcile({
      state,
      wanted: await Promise.all(vm.machines.map((machine) => wantedMachine(machine, modules))),
      driver: machines,
      proxy: adminApiProxy({ plan, state, ctx, backends, timeoutMs }),
      ctx,
      timeoutMs,
    });
  },

  async down(state, ctx, options) {
    const machines = driver(ctx, state.proxy.admin);
    await stopMachines(state, state.machines, machines, ctx, options);
    await machines.cleanup(state);
  },

  async inspect(state, ctx) {
    return Promise.all(processStatuses(state).map(async (m): Promise<MachineStatus> => {
      const supervised = await serviceStatus(serviceDir(stateDir(ctx.projectDir), m.name));
      if (!supervised) return m;
      const running = supervised.up || supervised.wantedUp;
      return { ...m, pid: supervised.pid, restarts: supervised.restarts, state: m.state === 'exited' || m.state === 'running' ? (running ? 'running' : 'exited') : m.state };
    }));
  },

  async describe(plan, _previous, ctx) {
    // The dry run boots nothing, so it cannot probe KVM: it shows the TCG command lines.
    const inputs: VmInputs = { accel: 'tcg', stateDir: stateDir(ctx.projectDir), tscKhz: hostTscKhz() };
    if (plan.config.qemu.guest === 'unikraft') {
      inputs.unikraft = findUnikraftBuilds(plan, { requireBuilt: false });
    } else {
      const kernel = await findGuestKernel({ configKernel: plan.config.qemu.kernel, allowDownload: false }).catch(() => undefined);
      inputs.kernel = kernel?.kernel ?? `<${DEBIAN_KERNEL_PACKAGE}, fetched by up>`;
    }
    const vm = planVmFleet(plan, inputs);
    const build = plan.config.qemu.guest === 'unikraft' ? [] : appBuildCommands(plan, 'static');
    return [...build, ...networkCommands(vm.network), ...vm.machines.map((m) => m.command)];
  },

  async preview(plan, state, ctx, options) {
    const resources = recordedResources(state, plan.fleet);
    // No KVM probe: `auto` keeps the acceleration the running machines have, as `up` does.
    const requested = options.accel ?? plan.config.qemu.accel;
    const inputs: VmInputs = { accel: requested === 'auto' ? (resources.accel ?? 'tcg') : requested, stateDir: stateDir(ctx.projectDir), tscKhz: hostTscKhz() };
    let modules: string[] = [];
    if (plan.config.qemu.guest === 'unikraft') {
      inputs.unikraft = findUnikraftBuilds(plan);
    } else {
      const kernel = await findGuestKernel({ configKernel: plan.config.qemu.kernel, allowDownload: false });
      inputs.kernel = kernel.kernel;
      modules = kernel.modules;
    }
    const vm = planVmFleet(plan, inputs);
    const pending = plan.config.qemu.guest === 'unikraft' ? [] : pendingBuilds(ctx.projectDir, staticBuilds(plan));
    const network = resources.networkFingerprint === sha256(JSON.stringify(vm.network))
      ? []
      : [`network: bridge ${vm.network.bridge.name} ${vm.network.bridge.address}, ${vm.network.taps.length} taps (changed: what is missing is created)`];
    const rebuilt = new Set(pending.map(({ build }) => build.artifact!));
    const wanted = await Promise.all(vm.machines.map(async (machine) => {
      const { plan: start, fingerprint } = await wantedMachine(machine, modules, rebuilt);
      return { plan: { name: start.name, role: start.role, command: machine.command }, fingerprint };
    }));
    return {
      steps: [...pending.map(({ build, reason }) => `build ${build.label} (${reason})`), ...network],
      wanted,
      running: await driver(ctx, vm.proxy.admin, plan.config.restart).running(),
    };
  },
};

/**
 * `make static` in each app, skipped when unchanged: what `microvm` guests boot, and what a
 * static OCI image holds (cli/oci), since neither has a C library to link against.
 */
export async function buildStaticPrograms(plan: FleetPlan, ctx: RuntimeContext): Promise<void> {
  for (const build of staticBuilds(plan)) {
    await buildApp(ctx.projectDir, build, ctx.progress);
    if (!(await isStaticElf(build.artifact!))) throw new UserError(`${build.artifact} is not statically linked: VM guests and static OCI images have no C library; fix the "static" target of ${build.dir}/Makefile`);
  }
}

/** Guests have no C library: both programs are built fully static (`make static`). */
function staticBuilds(plan: FleetPlan): AppBuild[] {
  const apps = [['proxy', plan.proxy.app], ['backend', plan.backends[0]?.app]] as const;
  return apps.flatMap(([label, app]) => (app ? [{ label: `${label} (static)`, dir: app.dir, artifact: staticBinary(app.binary), target: 'static' }] : []));
}

function recordedResources(state: FleetState | null, fleet: string): QemuResources {
  const parsed = state ? qemuResources.safeParse(state.resources) : undefined;
  return parsed?.success ? parsed.data : { owner: ownerMark(fleet), network: [] };
}

/** What the guests boot (a Linux kernel, or each app's kraft build) and the acceleration. */
async function bootInputs(plan: FleetPlan, resources: QemuResources, ctx: RuntimeContext, options: UpOptions): Promise<{ inputs: VmInputs; modules: string[] }> {
  const inputs: VmInputs = { accel: 'tcg', stateDir: stateDir(ctx.projectDir), tscKhz: hostTscKhz() };
  let modules: string[] = [];
  if (plan.config.qemu.guest === 'unikraft') {
    inputs.unikraft = findUnikraftBuilds(plan);
  } else {
    const kernel = await ctx.progress.step('find a Linux kernel for the guests', () => findGuestKernel({ configKernel: plan.config.qemu.kernel }));
    inputs.kernel = kernel.kernel;
    modules = kernel.modules;
  }
  const requested = options.accel ?? plan.config.qemu.accel;
  if (requested === 'auto' && resources.accel !== undefined) {
    inputs.accel = resources.accel;
    return { inputs, modules };
  }
  const accel = await ctx.progress.step(`choose acceleration (${requested})`, () => chooseAccel(requested, inputs.kernel));
  ctx.progress.log(accel.reason);
  inputs.accel = accel.accel;
  return { inputs, modules };
}

/**
 * The machine with its boot image and fingerprint: the QEMU command line plus everything the
 * guest boots (kernel, initrd), so a rebuilt program or kernel restarts exactly its machines.
 * The proxy's fingerprint leaves its backend list out (on the kernel command line or in the
 * initramfs): scaling changes that list through the admin API, not by a restart. Of its
 * certificate only the key counts: a renewed chain reaches it through the admin API too.
 */
async function wantedMachine(machine: VmMachinePlan, modules: readonly string[], rebuilt: ReadonlySet<string> = new Set()): Promise<Wanted<VmStart>> {
  const image = machine.initramfs;
  const pem = image?.certificate === undefined ? undefined : readFileSync(image.certificate, 'utf8');
  const initramfsWith = async (programArgs: string[], certificate: string | undefined): Promise<Buffer | undefined> => {
    if (!image) return undefined;
    if (image.program !== undefined) {
      return writeCpio(await guestInitramfsEntries({ busybox: BUSYBOX, init: guestInit(), modules, program: image.program, programArgs, certificate }));
    }
    return initrdWithCertificate(image.base, certificate ?? '');
  };
  const initramfs = await initramfsWith(machine.programArgs, pem);
  const isProxy = machine.role === 'proxy';
  const fingerprinted = isProxy ? withoutLiveLists(machine.programArgs) : machine.programArgs;
  const command = isProxy ? qemuCommand({ ...machine.guest, programArgs: withoutLiveLists(machine.guest.programArgs) }) : machine.command;
  const fingerprintedInitramfs = isProxy ? await initramfsWith(fingerprinted, pem === undefined ? undefined : privateKey(pem) ?? '') : initramfs;
  const hash = createHash('sha256').update(JSON.stringify([command.file, ...command.args]));
  hash.update(fileHash(machine.guest.kernel));
  // The dry run's guess for a program a build is about to replace: not known before it runs.
  if (image?.program !== undefined && rebuilt.has(image.program)) hash.update('rebuilt');
  if (fingerprintedInitramfs) hash.update(fingerprintedInitramfs);
  else if (machine.guest.initrd) hash.update(fileHash(machine.guest.initrd));
  return { plan: { name: machine.name, role: machine.role, machine, initramfs }, fingerprint: hash.digest('hex') };
}

async function applyFleetNetwork(vm: VmFleetPlan, state: FleetState, resources: QemuResources, fingerprint: string, ctx: RuntimeContext): Promise<void> {
  resources.owner = vm.network.owner;
  await ctx.progress.step(`network: bridge ${vm.network.bridge.name} ${vm.network.bridge.address}, ${vm.network.taps.length} taps`, () =>
    applyNetwork(vm.network, {
      run,
      record: async (resource) => {
        if (!resources.network.some((r) => r.kind === resource.kind && r.name === resource.name)) resources.network.push(resource);
        ctx.saveState(state);
      },
    }));
  resources.networkFingerprint = fingerprint;
  ctx.saveState(state);
}

/**
 * QEMU machines, each with its QMP socket. With the `on-failure` restart policy QEMU runs in
 * the foreground under its own s6-supervise (s6.ts), which starts it again when it dies or its
 * guest powers off by itself; otherwise it daemonizes and is recognised by PID and command line.
 * The proxy is asked to shut down through its admin API (`proxyAdmin`, its planned address) and
 * its VM powers off by itself; a backend, or a proxy still there at the timeout, is asked to
 * quit over QMP and killed by PID after the timeout. A supervisor is released first, so it
 * restarts nothing that is being stopped.
 */
function driver(ctx: RuntimeContext, proxyAdmin: string, policy?: RestartPolicy): MachineDriver<VmStart> {
  const dirOf = (name: string): string => serviceDir(stateDir(ctx.projectDir), name);
  return {
    record: ({ role, machine }) => ({
      address: machine.serves,
      ...(role === 'proxy' ? { admin: proxyAdmin } : {}),
      command: [machine.command.file, ...machine.command.args],
      log: machine.guest.serialLog,
    }),
    start: (start) => (policy === 'on-failure' ? startSupervised(start, dirOf(start.name), machineMark(ctx.projectDir, start.name), ctx) : startMachine(start)),
    stop: (machines, options) => Promise.all(machines.map(async (m) => {
      const dir = dirOf(m.name);
      await releaseService(dir);
      const supervised = await serviceStatus(dir);
      const current = supervised?.pid ? { ...m, pid: supervised.pid } : m;
      await stopMachine(current, join(vmDir(ctx), `${m.name}.qmp`), options, ctx.adminToken());
      await stopMarked([machineMark(ctx.projectDir, m.name)], options.timeoutMs);
      removeService(dir);
    })).then(() => {}),
    running: async () => {
      const names = existsSync(join(stateDir(ctx.projectDir), 'supervise')) ? readdirSync(join(stateDir(ctx.projectDir), 'supervise')) : [];
      const supervised = new Map(await Promise.all(names.map(async (name) => [name, await serviceStatus(dirOf(name))] as const)));
      // Between a crash and the restart a supervised VM still counts as running, as far as up goes.
      return (m) => {
        const status = supervised.get(m.name);
        return status ? status.up || status.wantedUp : isOurProcess(m.pid, m.command);
      };
    },
    cleanup: async (state) => {
      if (state.machines.length === 0) await removeFleet(state, ctx);
      else await removeUnusedTaps(state, ctx);
    },
  };
}

/** The boot image is written (0600: a proxy's holds its key) and the old PID file and QMP socket removed. */
function prepareStart({ machine, initramfs }: VmStart): void {
  if (machine.initramfs && initramfs) writeFileAtomic(machine.initramfs.path, initramfs, 0o600);
  rmSync(machine.guest.pidFile, { force: true });
  rmSync(machine.guest.qmpSocket, { force: true });
  writeFileSync(machine.guest.serialLog, '');
}

/** QEMU started (it daemonizes) and its PID read from its PID file. */
async function startMachine(start: VmStart): Promise<number> {
  const { machine } = start;
  prepareStart(start);
  const result = await execa(machine.command.file, machine.command.args, { reject: false, all: true, stdin: 'ignore', timeout: QEMU_START_TIMEOUT_MS });
  if (result.exitCode !== 0) {
    throw new UserError(`QEMU did not start ${machine.name} (\`${toShell(machine.command)}\` ${result.timedOut ? 'timed out' : `exit ${result.exitCode}`}):`, (result.all ?? '').trim().split('\n').slice(-10));
  }
  return Number(readFileSync(machine.guest.pidFile, 'utf8').trim());
}

/**
 * QEMU in the foreground under a new s6-supervise; its PID once it wrote its PID file. A QEMU
 * that exits first (a bad option, a missing file) is not left to restart in a loop: the
 * supervisor is released and QEMU's last words reported.
 */
async function startSupervised(start: VmStart, dir: string, mark: string, ctx: RuntimeContext): Promise<number> {
  const { machine } = start;
  prepareStart(start);
  writeService({ dir, command: machine.command, cwd: ctx.projectDir, env: {}, policy: 'on-failure', cleanExitEnds: false });
  spawnMachine({ file: 's6-supervise', args: [dir] }, { log: join(stateDir(ctx.projectDir), 'logs', `${machine.name}.supervise.log`), cwd: dir, mark });
  const deadline = Date.now() + QEMU_START_TIMEOUT_MS;
  for (;;) {
    const status = await serviceStatus(dir);
    const pid = existsSync(machine.guest.pidFile) ? Number(readFileSync(machine.guest.pidFile, 'utf8').trim()) : NaN;
    if (status?.up && status.pid === pid) return pid;
    if ((status && status.restarts > 0) || Date.now() > deadline) {
      await releaseService(dir);
      await stopMarked([mark], 5_000);
      removeService(dir);
      const log = join(stateDir(ctx.projectDir), 'logs', `${machine.name}.supervise.log`);
      throw new UserError(`QEMU did not start ${machine.name} (\`${toShell(machine.command)}\`${Date.now() > deadline ? ' timed out' : ' exited at once'}):`, logTail(log, 10));
    }
    await sleep(50);
  }
}

/** The network, the machines' files and the state: what is left once no machine runs. */
async function removeFleet(state: FleetState, ctx: RuntimeContext): Promise<void> {
  const resources = recordedResources(state, state.fleet);
  await removeNetwork(resources.network as NetworkResource[], resources.owner, run);
  rmSync(vmDir(ctx), { recursive: true, force: true });
  rmSync(join(stateDir(ctx.projectDir), 'supervise'), { recursive: true, force: true });
  ctx.clearState();
}

/** Deletes the recorded taps no remaining machine uses (after scaling down, or a failed scale-up). */
async function removeUnusedTaps(state: FleetState, ctx: RuntimeContext): Promise<void> {
  const resources = recordedResources(state, state.fleet);
  const used = new Set(state.machines.map((m) => tapName(state.fleet, m.name)));
  const unused = resources.network.filter((r) => r.kind === 'tap' && !used.has(r.name));
  if (unused.length === 0) return;
  await removeNetwork(unused as NetworkResource[], resources.owner, run);
  resources.network = resources.network.filter((r) => !unused.includes(r));
  // The network no longer matches any plan that has those machines: the next `up` applies it again.
  delete resources.networkFingerprint;
  state.resources = resources;
  ctx.saveState(state);
}

function vmDir(ctx: RuntimeContext): string {
  return join(stateDir(ctx.projectDir), 'vm');
}

/**
 * A proxy VM first gets `options.timeoutMs` to shut down by itself (proxy-shutdown.ts); then,
 * or at once for a backend, QMP `quit`, and SIGKILL if QEMU is still there after as long again.
 * A backend needs no gentler stop: by the time one is stopped, no peer holds a connection to
 * it (the proxy drained it, or was stopped before it: machines.ts `stopMachines`).
 */
async function stopMachine(machine: MachineState, qmpSocket: string, options: DownOptions, adminToken: string): Promise<void> {
  // A machine recorded without a PID was being started when uproxy died: its command line finds it.
  const pids = machine.pid !== null && !options.force ? [machine.pid] : [...new Set([...(machine.pid === null ? [] : [machine.pid]), ...findProcessesByArgv([machine.command])])];
  const alive = () => pids.filter((pid) => isOurProcess(pid, machine.command));
  const ours = alive();
  if (ours.length === 0) return;
  if (await shutdownProxy(machine, adminToken, () => alive().length === 0, Date.now() + options.timeoutMs)) {
    await waitForExit(ours, pidExists);
    return;
  }
  try {
    const qmp = await QmpClient.connect(qmpSocket, 2_000);
    try {
      await qmp.quit(options.timeoutMs);
    } finally {
      qmp.close();
    }
  } catch {
    // Falls through to the PID below: a wedged QEMU must not keep the network from being removed.
  }
  const deadline = Date.now() + options.timeoutMs;
  while (alive().length > 0 && Date.now() < deadline) await sleep(50);
  for (const pid of alive()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone between the check and the kill.
    }
  }
  // An exiting QEMU drops its command line before it is gone: wait for the PID itself, so
  // that `down` returning means no QEMU of ours is left.
  await waitForExit(ours, pidExists);
}


function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The host TSC frequency, needed only by the `microvm` board under TCG. The kernel's own
 * measurement when it exports one; else `cpu MHz`, which on a host with frequency scaling is
 * the current core clock and only an approximation of the TSC rate.
 */
export function hostTscKhz(read: (path: string) => string = (path) => readFileSync(path, 'utf8')): number | undefined {
  const attempt = (path: string, parse: (text: string) => number | undefined): number | undefined => {
    try {
      const khz = parse(read(path));
      return khz !== undefined && Number.isFinite(khz) && khz > 0 ? khz : undefined;
    } catch {
      return undefined;
    }
  };
  return (
    attempt('/sys/devices/system/cpu/cpu0/tsc_freq_khz', (text) => (/^\d+$/.test(text.trim()) ? Number(text.trim()) : undefined)) ??
    attempt('/proc/cpuinfo', (text) => {
      const match = /^cpu MHz\s*:\s*([\d.]+)/m.exec(text);
      return match ? Math.round(Number(match[1]) * 1000) : undefined;
    })
  );
}
