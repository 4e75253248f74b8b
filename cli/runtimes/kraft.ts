/**
 * The `kraft` runtime: the proxy and every backend as a Unikraft unikernel that kraftkit builds
 * and runs (`kraft build`, `kraft net create`, `kraft run -d`, `kraft ps`, `kraft stop`/`rm`).
 * Every command line comes from cli/fleet/kraft-plan.ts. kraft keeps its machines per user,
 * so the user kraft ran as is recorded and a different one is called out.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import * as z from 'zod';
import { toShell, type CommandLine } from '../fleet/argv.js';
import {
  KRAFT, kernelCommandLineProblem, kraftListCommand, kraftNetRemoveCommand, kraftRemoveCommand, kraftStopCommand, planKraftFleet,
  type KraftApp, type KraftFleetPlan, type KraftMachinePlan,
} from '../fleet/kraft-plan.js';
import { instanceName, type FleetPlan } from '../fleet/plan.js';
import { stateDir, writeFileAtomic } from '../files.js';
import type { FleetState } from '../fleet/state.js';
import { applyNetwork, removeNetwork, type NetworkResource } from '../net/apply.js';
import { networkCommands, nftTableName, ownerMark, type NetworkPlan } from '../fleet/network-plan.js';
import { localRunner } from '../net/exec.js';
import { UserError } from '../errors.js';
import { pidExists } from '../pid.js';
import { privateKey } from '../tls/pem.js';
import { adminApiProxy, withoutLiveLists } from './backend-sync.js';
import { fileHash } from './build.js';
import { initrdWithCertificate } from './initramfs.js';
import { readKraftfileNames } from './kraftfile.js';
import { shutdownProxy } from './proxy-shutdown.js';
import { inFleetOrder, reconcile, stopMachines, WAIT_POLICY, type MachineDriver } from './machines.js';
import { findOnPath, logTail, sleep, waitForExit } from './processes.js';
import { type DownOptions, type MachineStatus, type Runtime, type RuntimeContext } from './runtime.js';

/** Unikernels boot in well under a second, but kraft itself and TCG on a loaded machine do not. */
const DEFAULT_UP_TIMEOUT_MS = 120_000;

/** One row of `kraft ps -a -l -o json` (kraftkit's tableprinter: every value a string). */
const psRow = z.object({
  name: z.string(),
  status: z.string(),
  pid: z.string().optional(),
  ip: z.string().optional(),
  kernel: z.string().optional(),
});
/** kraft marshals an empty list as `null`. */
const psOutput = z.union([z.null(), z.array(psRow)]);
export type KraftMachine = z.infer<typeof psRow>;

const kraftResources = z.object({
  /** kraft's state lives under this user's home: another user's `kraft ps` does not see it. */
  user: z.object({ name: z.string(), uid: z.number() }),
  network: z.object({ manager: z.enum(['kraft', 'uproxy']), name: z.string(), owner: z.string(), created: z.array(z.object({ kind: z.enum(['bridge', 'tap', 'nft-table']), name: z.string() })) }).nullable(),
});
type KraftResources = z.infer<typeof kraftResources>;

export const runtime: Runtime = {
  name: 'kraft',
  keyOverAdminApi: false,

  async preflight(plan) {
    if (findOnPath(KRAFT) === null) throw new UserError(`kraft is not installed or not on PATH (the kraft runtime runs it): ${KRAFT_MISSING}`);
    // Refused now, not after minutes of `kraft build`: the plan's arguments do not depend on the build.
    for (const machine of kraftFleet(plan).machines) {
      const problem = kernelCommandLineProblem(machine, plan.config.unikraft.mode);
      if (problem) throw new UserError(`${problem}: use fewer backends or tokens, or the host/qemu runtime`);
    }
  },

  async build(plan, ctx) {
    for (const app of kraftFleet(plan).apps) await buildApp(app, ctx);
  },

  async up(plan, previous, ctx, options) {
    const kraftPlan = kraftFleet(plan);
    const resources = previousResources(previous, ctx);
    const state: FleetState = {
      version: 1,
      fleet: plan.fleet,
      runtime: 'kraft',
      proxy: kraftPlan.proxy,
      machines: previous?.machines ?? [],
      resources,
    };
    ctx.saveState(state);
    const machines = driver(state, ctx);
    try {
      await ensureNetwork(kraftPlan, state, resources, ctx);
    } catch (error) {
      await machines.cleanup(state);
      throw error;
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_UP_TIMEOUT_MS;
    const backends = kraftPlan.machines.filter((m) => m.role === 'backend').map((m) => ({ name: m.name, address: m.serves }));
    return reconcile({
      state,
      wanted: kraftPlan.machines.map((m) => ({ plan: m, fingerprint: fingerprint(m) })),
      driver: machines,
      proxy: adminApiProxy({ plan, state, ctx, backends, timeoutMs, hint: `see \`kraft logs ${instanceName(plan.fleet, plan.proxy.name)}\`` }),
      ctx,
      timeoutMs,
    });
  },

  async down(state, ctx, options) {
    previousResources(state, ctx);
    const machines = driver(state, ctx);
    // --force: also this fleet's machines kraft lists that the state does not record (a state
    // written by hand, or lost); kraft knows them only by name.
    const recorded = new Set(state.machines.map((m) => instanceName(state.fleet, m.name)));
    const leftovers = options.force
      ? [...(await listMachines()).keys()].filter((name) => !recorded.has(name) && isFleetInstance(state.fleet, name))
      : [];
    await stopMachines(state, inFleetOrder(state.machines), machines, ctx, options);
    if (leftovers.length > 0) await ctx.progress.step(`remove ${leftovers.join(', ')} (not recorded)`, () => removeInstances(leftovers, options, ctx));
    await machines.cleanup(state);
  },

  async inspect(state) {
    // A failing `kraft ps` is the answer: without it nothing is known of any machine.
    const listed = await listMachines();
    return inFleetOrder(state.machines).map((m): MachineStatus => {
      const row = listed.get(instanceName(state.fleet, m.name));
      const pid = row?.pid ? Number(row.pid) : null;
      return {
        name: m.name,
        role: m.role,
        address: m.address,
        pid: pid && pid > 0 ? pid : m.pid,
        state: m.status !== 'running' ? m.status : row?.status === 'running' ? 'running' : 'exited',
      };
    });
  },

  async describe(plan) {
    const kraftPlan = kraftFleet(plan);
    const network = kraftPlan.network.manager === 'kraft' ? [kraftPlan.network.create] : networkCommands(uproxyBridge(plan.fleet, kraftPlan));
    return [
      ...kraftPlan.apps.flatMap((a) => (a.prepare ? [a.prepare, a.build] : [a.build])),
      ...network,
      ...kraftPlan.machines.map((m) => m.run),
    ];
  },
};

function kraftFleet(plan: FleetPlan): KraftFleetPlan {
  return planKraftFleet(plan, { kraftfileNames: readKraftfileNames(plan, 'the kraft runtime'), stateDir: stateDir(plan.projectDir) });
}

/** `<fleet>-proxy`, `<fleet>-backend-N`: the names this fleet's machines have in kraft. */
function isFleetInstance(fleet: string, name: string): boolean {
  const prefix = instanceName(fleet, '');
  return name.startsWith(prefix) && /^(proxy|backend-\d+)$/.test(name.slice(prefix.length));
}

/**
 * kraft's machines: started with `kraft run -d`, seen through `kraft ps`, stopped with `kraft
 * stop` + `kraft rm`; the proxy is first asked to shut down through its admin API, and its
 * unikernel halts by itself once it has drained (proxy-shutdown.ts). The last listing is kept:
 * a name kraft still lists blocks `kraft run`.
 */
function driver(state: FleetState, ctx: RuntimeContext): MachineDriver<KraftMachinePlan> {
  let listed = new Map<string, KraftMachine>();
  return {
    record: (m) => ({
      address: m.serves,
      ...(m.role === 'proxy' ? { admin: state.proxy.admin } : {}),
      command: [m.run.file, ...m.run.args],
      log: machineLog(ctx, m.name),
    }),
    async start(m, machine) {
      // A machine of that name that the state does not record (from a lost state) blocks the name.
      if (listed.has(m.instance)) await removeInstances([m.instance], { timeoutMs: WAIT_POLICY.stopMs, force: false }, ctx);
      // 0600: it holds the proxy's key, which reaches the unikernel only this way.
      if (m.rootfs) writeFileAtomic(m.rootfs.path, initrdWithCertificate(m.rootfs.base, readFileSync(m.rootfs.certificate, 'utf8')), 0o600);
      await runKraft(m.run, ctx, { log: machine.log });
      listed = await listMachines();
      const pid = Number(listed.get(m.instance)?.pid ?? NaN);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    },
    async stop(machines, options) {
      if (machines.some((m) => m.role === 'proxy')) {
        const deadline = Date.now() + options.timeoutMs;
        const before = await listMachines();
        for (const m of machines) {
          const row = before.get(instanceName(state.fleet, m.name));
          const pid = Number(row?.pid ?? NaN);
          // kraft reports the QEMU process: its exit is the unikernel powering off.
          if (row?.status === 'running' && Number.isInteger(pid) && pid > 0) await shutdownProxy(m, ctx.adminToken(), () => !pidExists(pid), deadline);
        }
      }
      await removeInstances(machines.map((m) => instanceName(state.fleet, m.name)), options, ctx);
      listed = await listMachines();
    },
    async running() {
      listed = await listMachines();
      return (m) => listed.get(instanceName(state.fleet, m.name))?.status === 'running';
    },
    async cleanup(remaining) {
      if (remaining.machines.length === 0) await removeNetworkAndState(remaining, ctx);
    },
  };
}

function currentUser(): { name: string; uid: number } {
  const info = userInfo();
  return { name: info.username, uid: info.uid };
}

/** The recorded resources, with a clear warning when kraft now runs as someone else. */
function previousResources(previous: FleetState | null, ctx: RuntimeContext): KraftResources {
  const me = currentUser();
  const parsed = previous ? kraftResources.safeParse(previous.resources) : undefined;
  if (!parsed?.success) return { user: me, network: null };
  const recorded = parsed.data.user;
  if (recorded.uid !== me.uid) {
    const warning =
      `warning: this fleet was started by kraft as user ${recorded.name} (uid ${recorded.uid}), but uproxy now runs as ${me.name} (uid ${me.uid}). ` +
      `kraft keeps its machines and networks per user, so this kraft cannot see them: run uproxy as ${recorded.name} (e.g. \`sudo -u ${recorded.name} uproxy down\`).`;
    process.stderr.write(`${warning}\n`);
    ctx.progress.log(warning);
  }
  return parsed.data;
}

function uproxyBridge(fleet: string, kraftPlan: KraftFleetPlan): NetworkPlan {
  // kraft's qemu driver makes each machine's tap itself; uproxy provides only the bridge.
  return {
    owner: ownerMark(fleet),
    bridge: { name: kraftPlan.network.name, address: `${kraftPlan.network.gateway}/${kraftPlan.network.prefix}` },
    taps: [],
    nftTable: nftTableName(fleet),
  };
}

async function ensureNetwork(kraftPlan: KraftFleetPlan, state: FleetState, resources: KraftResources, ctx: RuntimeContext): Promise<void> {
  const { network } = kraftPlan;
  if (resources.network?.name === network.name && resources.network.manager === network.manager) return;
  const record = { manager: network.manager, name: network.name, owner: ownerMark(state.fleet), created: [] as NetworkResource[] };
  resources.network = record;
  ctx.saveState(state);
  if (network.manager === 'kraft') {
    await ctx.progress.step(`network: kraft net create ${network.name} (${network.gateway}/${network.prefix})`, () => runKraft(network.create, ctx));
    return;
  }
  await ctx.progress.step(`network: bridge ${network.name} ${network.gateway}/${network.prefix} (uproxy)`, () =>
    applyNetwork(uproxyBridge(state.fleet, kraftPlan), {
      run: localRunner(),
      record: async (resource) => {
        record.created.push(resource);
        ctx.saveState(state);
      },
    }));
}

async function removeNetworkAndState(state: FleetState, ctx: RuntimeContext): Promise<void> {
  const parsed = kraftResources.safeParse(state.resources);
  const network = parsed.success ? parsed.data.network : null;
  if (network?.manager === 'kraft') {
    await ctx.progress.step(`network: kraft net rm ${network.name}`, () => runKraft(kraftNetRemoveCommand(network.name), ctx));
  } else if (network?.manager === 'uproxy') {
    await removeNetwork(network.created, network.owner, localRunner());
  }
  ctx.clearState();
}

/**
 * SHA-256 of the command and of the built artifact: either changing restarts the machine. The
 * proxy's backend list is left out: a running proxy gets a new one through its admin API; so is
 * its certificate, but not its key, which only a restart can bring (tls/proxy-cert.ts).
 */
function fingerprint(machine: KraftMachinePlan): string {
  const artifact = existsSync(machine.app.artifact) ? fileHash(machine.app.artifact) : 'missing';
  const args = machine.role === 'proxy' ? withoutLiveLists(machine.run.args) : machine.run.args;
  const key = machine.rootfs ? privateKey(readFileSync(machine.rootfs.certificate, 'utf8')) ?? '' : '';
  return createHash('sha256').update(JSON.stringify([machine.run.file, ...args, artifact])).update(key).digest('hex');
}


/**
 * `kraft stop` + `kraft rm` for each of these machines kraft lists, one after the other. A
 * running one gets `options.timeoutMs` to stop; its process (the PID kraft reports) is killed
 * if it is still there then. With `options.force` a failing `kraft rm` is reported and the
 * rest goes on.
 */
async function removeInstances(instances: readonly string[], options: DownOptions, ctx: RuntimeContext): Promise<void> {
  const listed = await listMachines();
  for (const name of instances) {
    const row = listed.get(name);
    if (!row) continue;
    if (row.status === 'running') {
      const deadline = Date.now() + options.timeoutMs;
      await runKraft(kraftStopCommand(name), ctx, { tolerate: true, timeoutMs: options.timeoutMs });
      const pid = Number(row.pid ?? NaN);
      if (Number.isInteger(pid) && pid > 0) {
        while (pidExists(pid) && Date.now() < deadline) await sleep(50);
        if (pidExists(pid)) {
          ctx.progress.log(`${name} did not stop within ${Math.round(options.timeoutMs / 1000)} s: killing its process ${pid}`);
          killIfAlive(pid);
          await waitForExit([pid], pidExists);
        }
      }
    }
    await runKraft(kraftRemoveCommand(name), ctx, { tolerate: options.force });
  }
}

function killIfAlive(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone between the check and the kill.
  }
}

async function listMachines(): Promise<Map<string, KraftMachine>> {
  const list = kraftListCommand();
  const output = await runKraft(list, null);
  let json: unknown;
  try {
    json = JSON.parse(output);
  } catch {
    throw new UserError(`\`${toShell(list)}\` did not print JSON (got ${JSON.stringify(output.slice(0, 80))}): is this kraftkit 0.9 or newer?`);
  }
  const parsed = psOutput.safeParse(json);
  if (!parsed.success) throw new UserError(`\`${toShell(list)}\` printed JSON of an unexpected shape: ${parsed.error.issues[0]?.message ?? ''}`);
  return new Map((parsed.data ?? []).map((row) => [row.name, row]));
}

async function buildApp(app: KraftApp, ctx: RuntimeContext): Promise<void> {
  const log = join(stateDir(ctx.projectDir), 'logs', `kraft-build-${app.label}.log`);
  writeFileAtomic(log, '');
  await ctx.progress.step(`kraft build ${app.label}`, async () => {
    if (app.prepare) await streamed(app.prepare, app.dir, log, ctx, `preparing the rootfs of ${app.label}`);
    await streamed(app.build, app.dir, log, ctx, `building ${app.label} with kraft`);
    if (!existsSync(app.artifact)) {
      throw new UserError(`kraft build finished in ${app.dir} but left no ${app.artifact}: check the Kraftfile's name and targets (qemu/x86_64); the end of ${log}:`, logTail(log, 20));
    }
  });
}

/** Runs a command with its output appended to `log` and shown line by line in the progress view. */
async function streamed(command: CommandLine, cwd: string, log: string, ctx: RuntimeContext, what: string): Promise<void> {
  const out = createWriteStream(log, { flags: 'a' });
  out.write(`$ ${toShell(command)}\n`);
  const child = execa(command.file, command.args, { cwd, all: true, reject: false, stdin: 'ignore', buffer: false });
  child.all?.on('data', (chunk: Buffer) => {
    out.write(chunk);
    for (const line of chunk.toString().split('\n')) if (line.trim().length > 0) ctx.progress.log(line);
  });
  const result = await child;
  await new Promise<void>((resolve) => out.end(resolve));
  if (result.failed) {
    throw new UserError(`${what} failed (${toShell(command)}: ${failure(command, result.exitCode, result.originalMessage)}); the end of ${log}:`, logTail(log, 20));
  }
}

interface RunKraftOptions {
  /** Appends the command and its output to this file. */
  log?: string;
  /** A failure is only logged (`kraft stop` of a machine that has just exited). */
  tolerate?: boolean;
  /** Killed after this long (`kraft stop` under `down --timeout`), which counts as a failure. */
  timeoutMs?: number;
}

/** Runs one kraft command; returns its stdout. `ctx` null: nothing is reported (listing). */
async function runKraft(command: CommandLine, ctx: RuntimeContext | null, options: RunKraftOptions = {}): Promise<string> {
  const result = await execa(command.file, command.args, { reject: false, stdin: 'ignore', timeout: options.timeoutMs });
  const output = [result.stdout, result.stderr].filter((s) => typeof s === 'string' && s.length > 0).join('\n');
  if (options.log) {
    const previous = existsSync(options.log) ? readFileSync(options.log, 'utf8') : '';
    writeFileAtomic(options.log, `${previous}$ ${toShell(command)}\n${output}\n`);
  }
  if (result.failed) {
    const why = result.timedOut ? `no answer within ${Math.round((options.timeoutMs ?? 0) / 1000)} s` : failure(command, result.exitCode, result.originalMessage);
    const message = `\`${toShell(command)}\` failed (${why})`;
    if (options.tolerate) {
      ctx?.progress.log(message);
      return '';
    }
    throw new UserError(`${message}:`, (output || '(no output)').trimEnd().split('\n').slice(-15));
  }
  return String(result.stdout ?? '');
}

const KRAFT_MISSING = 'install kraftkit (https://unikraft.org/docs/cli/install), or use `--runtime qemu` with `"qemu": {"guest": "unikraft"}`';

function failure(command: CommandLine, exitCode: number | undefined, message: string | undefined): string {
  if (exitCode !== undefined) return `exit ${exitCode}`;
  if (command.file === KRAFT && /ENOENT/.test(message ?? '')) {
    return `kraft is not installed or not on PATH: ${KRAFT_MISSING}`;
  }
  return message ?? 'it could not be started';
}

function machineLog(ctx: RuntimeContext, name: string): string {
  return join(stateDir(ctx.projectDir), 'logs', `${name}.log`);
}
