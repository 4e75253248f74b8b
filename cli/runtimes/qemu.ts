/**
 * The `qemu` runtime: the proxy and every backend in its own QEMU machine, on a bridge uproxy
 * creates, one tap per machine. Order of `up`: network (recorded resource by resource), then
 * each machine (recorded as `starting` with its exact command line before QEMU runs), then a
 * wait until the proxy's admin API, reached from the host over the bridge, reports every
 * backend up. `down` asks each machine to quit over QMP, kills what does not go by its
 * recorded PID, and removes exactly the network resources the state records.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { toShell } from '../fleet/argv.js';
import type { Accel } from '../fleet/qemu-command.js';
import { planVmFleet, staticBinary, type VmFleetPlan, type VmMachinePlan } from '../fleet/vm-plan.js';
import { appBuildCommands, type FleetPlan } from '../fleet/plan.js';
import { stateDir, type FleetState, type MachineState } from '../fleet/state.js';
import { applyNetwork, removeNetwork, type NetworkResource } from '../net/apply.js';
import { requireNetAdmin } from '../net/capability.js';
import { networkCommands, ownerMark } from '../fleet/network-plan.js';
import { localRunner } from '../net/exec.js';
import { UserError } from '../errors.js';
import { buildApp, fileHash } from './build.js';
import { guestInit } from './guest-init.js';
import { guestInitramfsEntries, writeCpio } from './initramfs.js';
import { DEBIAN_KERNEL_PACKAGE, findGuestKernel } from './kernel.js';
import { BUSYBOX, chooseAccel, isStaticElf } from './probe.js';
import { waitUntilHealthy } from './health-wait.js';
import { processStatuses } from './machines.js';
import { findProcessesByArgv, isOurProcess, sleep } from './processes.js';
import { QmpClient } from './qmp.js';
import type { DownOptions, Runtime, RuntimeContext } from './runtime.js';

/** Four TCG guests booting at once on two cores take ~10 s; leave room for a loaded CI machine. */
const DEFAULT_UP_TIMEOUT_MS = 180_000;
const QEMU_START_TIMEOUT_MS = 30_000;

/** What this runtime keeps in `state.resources`. */
const qemuResources = z.object({
  owner: z.string(),
  network: z.array(z.object({ kind: z.enum(['bridge', 'tap', 'nft-table']), name: z.string() })),
});
type QemuResources = z.infer<typeof qemuResources>;

const run = localRunner();

export const runtime: Runtime = {
  name: 'qemu',

  async build(plan, ctx) {
    // Guests have no C library: both programs are built fully static (`make static`).
    for (const [label, app] of [['proxy', plan.proxy.app], ['backend', plan.backends[0]?.app]] as const) {
      if (!app) continue;
      const artifact = staticBinary(app.binary);
      await buildApp(ctx.projectDir, { label: `${label} (static)`, dir: app.dir, artifact, target: 'static' }, ctx.progress);
      if (!(await isStaticElf(artifact))) throw new UserError(`${artifact} is not statically linked: a VM guest has no C library; fix the "static" target of ${app.dir}/Makefile`);
    }
  },

  async up(plan, previous, ctx, options) {
    requireNetAdmin();
    if (previous && previous.machines.length > 0) {
      // Reconciling single VMs is not worth their boot time yet: a changed fleet restarts whole.
      await ctx.progress.step('stop the running fleet to apply the new plan', () => stopFleet(previous, ctx, { timeoutMs: 5_000, force: false }));
    }
    const kernel = await ctx.progress.step('find a Linux kernel for the guests', () =>
      findGuestKernel({ configKernel: plan.config.qemu.kernel }));
    const requested = (options.extra.accel as 'auto' | Accel | undefined) ?? 'auto';
    const accel = await ctx.progress.step(`choose acceleration (${requested})`, () => chooseAccel(requested, kernel.kernel));
    ctx.progress.log(accel.reason);
    const vm = planVmFleet(plan, { accel: accel.accel, kernel: kernel.kernel, stateDir: stateDir(ctx.projectDir), tscKhz: hostTscKhz() });

    const resources: QemuResources = { owner: vm.network.owner, network: [] };
    const state: FleetState = { version: 1, fleet: plan.fleet, runtime: 'qemu', proxy: vm.proxy, machines: [], resources };
    ctx.saveState(state);
    try {
      await ctx.progress.step(`network: bridge ${vm.network.bridge.name} ${vm.network.bridge.address}, ${vm.network.taps.length} taps`, () =>
        applyNetwork(vm.network, {
          run,
          record: async (resource) => {
            if (!resources.network.some((r) => r.kind === resource.kind && r.name === resource.name)) resources.network.push(resource);
            ctx.saveState(state);
          },
        }));
      mkdirSync(join(stateDir(ctx.projectDir), 'vm'), { recursive: true });
      mkdirSync(join(stateDir(ctx.projectDir), 'logs'), { recursive: true });
      for (const machine of vm.machines) {
        await ctx.progress.step(`start ${machine.name} (${machine.address.ip}, ${accel.accel}, ${machine.guest.memoryMiB} MiB)`, () =>
          startMachine(state, machine, kernel.modules, ctx));
      }
      await ctx.progress.step(`wait until the proxy reports ${plan.backends.length} backends up`, () =>
        waitHealthy(plan, state, ctx, options.timeoutMs ?? DEFAULT_UP_TIMEOUT_MS));
    } catch (error) {
      await stopFleet(state, ctx, { timeoutMs: 5_000, force: true });
      throw error;
    }
    return state;
  },

  async down(state, ctx, options) {
    await stopFleet(state, ctx, options);
  },

  async inspect(state) {
    return processStatuses(state);
  },

  async describe(plan, _previous, ctx) {
    const kernel = await findGuestKernel({ configKernel: plan.config.qemu.kernel, allowDownload: false }).catch(() => undefined);
    const vm = planVmFleet(plan, {
      // The dry run boots nothing, so it cannot probe KVM: it shows the TCG command lines.
      accel: 'tcg',
      kernel: kernel?.kernel ?? `<${DEBIAN_KERNEL_PACKAGE}, fetched by up>`,
      stateDir: stateDir(ctx.projectDir),
      tscKhz: hostTscKhz(),
    });
    return [...appBuildCommands(plan, 'static'), ...networkCommands(vm.network), ...vm.machines.map((m) => m.command)];
  },
};

/** The initramfs is written, the machine recorded, QEMU started (it daemonizes), its PID recorded. */
async function startMachine(state: FleetState, machine: VmMachinePlan, modules: readonly string[], ctx: RuntimeContext): Promise<void> {
  const initramfs = writeCpio(await guestInitramfsEntries({
    busybox: BUSYBOX,
    init: guestInit(),
    modules,
    program: machine.program,
    programArgs: machine.programArgs,
  }));
  writeFileSync(machine.initrd, initramfs);
  rmSync(machine.guest.pidFile, { force: true });
  rmSync(machine.guest.qmpSocket, { force: true });
  writeFileSync(machine.guest.serialLog, '');
  const record: MachineState = {
    name: machine.name,
    role: machine.role,
    address: machine.serves,
    pid: null,
    command: [machine.command.file, ...machine.command.args],
    log: machine.guest.serialLog,
    fingerprint: fileHash(machine.initrd),
    status: 'starting',
  };
  state.machines = [...state.machines.filter((m) => m.name !== machine.name), record];
  ctx.saveState(state);
  const result = await execa(machine.command.file, machine.command.args, { reject: false, all: true, stdin: 'ignore', timeout: QEMU_START_TIMEOUT_MS });
  if (result.exitCode !== 0) {
    throw new UserError(`QEMU did not start ${machine.name} (\`${toShell(machine.command)}\` ${result.timedOut ? 'timed out' : `exit ${result.exitCode}`}):`, (result.all ?? '').trim().split('\n').slice(-10));
  }
  record.pid = Number(readFileSync(machine.guest.pidFile, 'utf8').trim());
  record.status = 'running';
  ctx.saveState(state);
}

/** Polls the proxy's admin API over the bridge; a machine whose QEMU exits fails the wait with its serial log. */
function waitHealthy(plan: FleetPlan, state: FleetState, ctx: RuntimeContext, timeoutMs: number): Promise<void> {
  return waitUntilHealthy({ plan, state, ctx }, {
    timeoutMs,
    pollMs: 500,
    deadMachine: async () => {
      const dead = state.machines.find((m) => !isOurProcess(m.pid, m.command));
      return dead && { what: `machine ${dead.name} stopped while booting (its serial console is below)`, log: dead.log };
    },
  });
}

/** Every recorded machine stopped (QMP quit, SIGKILL by PID after the timeout), then the network removed, then the state. */
async function stopFleet(state: FleetState, ctx: RuntimeContext, options: DownOptions): Promise<void> {
  for (const m of state.machines) m.status = 'stopping';
  ctx.saveState(state);
  const vmDir = join(stateDir(ctx.projectDir), 'vm');
  await Promise.all(state.machines.map((m) => stopMachine(m, join(vmDir, `${m.name}.qmp`), options)));
  state.machines = [];
  ctx.saveState(state);
  const parsed = qemuResources.safeParse(state.resources);
  const resources = parsed.success ? parsed.data : { owner: ownerMark(state.fleet), network: [] };
  await removeNetwork(resources.network as NetworkResource[], resources.owner, run);
  rmSync(vmDir, { recursive: true, force: true });
  ctx.clearState();
}

async function stopMachine(machine: MachineState, qmpSocket: string, options: DownOptions): Promise<void> {
  // A machine recorded without a PID was being started when uproxy died: its command line finds it.
  const pids = machine.pid !== null && !options.force ? [machine.pid] : [...new Set([...(machine.pid === null ? [] : [machine.pid]), ...findProcessesByArgv([machine.command])])];
  const alive = () => pids.filter((pid) => isOurProcess(pid, machine.command));
  const ours = alive();
  if (ours.length === 0) return;
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
  while (alive().length > 0) await sleep(20);
  // An exiting QEMU drops its command line before it is gone: wait for the PID itself, so
  // that `down` returning means no QEMU of ours is left.
  const exitDeadline = Date.now() + 10_000;
  while (ours.some(exists) && Date.now() < exitDeadline) await sleep(20);
}

function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The host TSC frequency, needed only by the `microvm` board under TCG. */
function hostTscKhz(): number | undefined {
  try {
    const match = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return match ? Math.round(Number(match[1]) * 1000) : undefined;
  } catch {
    return undefined;
  }
}
