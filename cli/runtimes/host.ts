import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { appBuildCommands, LOOPBACK, planHostProcesses, type FleetPlan, type HostPorts, type HostProcessPlan } from '../fleet/plan.js';
import { stateDir } from '../files.js';
import type { FleetState, MachineState } from '../fleet/state.js';
import { UserError } from '../errors.js';
import { adminEndpointOf, type AdminEndpoint } from '../stats/client.js';
import { rollBackends, syncBackends, withoutBackendList } from './backend-sync.js';
import { buildApp, fileHash } from './build.js';
import { waitUntilHealthy } from './health-wait.js';
import {
  forgetMachines, isUnchanged, machineNames, planChanges, processStatuses, recordRunning, recordStarting, recordStopping,
} from './machines.js';
import { findProcessesByArgv, isOurProcess, spawnDetached, stopProcesses } from './processes.js';
import type { DownOptions, Runtime, RuntimeContext, UpOptions } from './runtime.js';

/**
 * The `host` runtime: the proxy and each backend as a local process on 127.0.0.1. `up`
 * reconciles: a machine whose process is alive and whose command and binary are unchanged is
 * left alone; everything else is (re)started. Scaling keeps the proxy running: its backend
 * list is not part of its fingerprint, and the change goes through its admin API
 * (backend-sync.ts). A proxy that does start gets the whole current list on its command line.
 */

const DEFAULT_UP_TIMEOUT_MS = 30_000;
/** Local processes come up in milliseconds and /stats on 127.0.0.1 is cheap: poll it often. */
const ADMIN_POLL_MS = 50;

export const runtime: Runtime = {
  name: 'host',

  async preflight(plan, previous) {
    if (plan.config.backends.image !== undefined) {
      throw new UserError('backends.image is for the VM runtimes; the host runtime builds and runs backends.app: remove "image" or choose --runtime qemu');
    }
    const ourPort = (name: string): number | undefined => {
      const machine = previous?.machines.find((m) => m.name === name);
      return machine ? portOf(machine.address) : undefined;
    };
    await checkConfiguredPort(plan.config.proxy.port, 'proxy.port', previous, ourPort(plan.proxy.name));
    await checkConfiguredPort(plan.config.proxy.adminPort, 'proxy.adminPort', previous, previous ? portOf(previous.proxy.admin) : undefined);
  },

  async build(plan, ctx) {
    await buildApp(ctx.projectDir, { label: 'proxy', dir: plan.proxy.app.dir, artifact: plan.proxy.app.binary }, ctx.progress);
    const backendApp = plan.backends[0]?.app;
    if (backendApp) await buildApp(ctx.projectDir, { label: 'backend', dir: backendApp.dir, artifact: backendApp.binary }, ctx.progress);
  },

  async up(plan, previous, ctx, options) {
    return reconcile(plan, previous, ctx, options);
  },

  async down(state, ctx, options) {
    await stopMachines(state, state.machines, ctx, options);
    ctx.clearState();
  },

  async inspect(state) {
    return processStatuses(state);
  },

  async describe(plan, previous, ctx) {
    const ports = await assignPorts(plan, previous);
    return [...appBuildCommands(plan), ...planHostProcesses(plan, ports, logDir(ctx)).map((p) => p.command)];
  },
};

function logDir(ctx: RuntimeContext): string {
  return join(stateDir(ctx.projectDir), 'logs');
}

async function reconcile(plan: FleetPlan, previous: FleetState | null, ctx: RuntimeContext, options: UpOptions): Promise<FleetState> {
  const ports = await assignPorts(plan, previous);
  const processes = planHostProcesses(plan, ports, logDir(ctx));
  const binaries = new Map<string, string>();
  const fingerprint = (p: HostProcessPlan): string => {
    const binary = binaries.get(p.command.file) ?? fileHash(p.command.file);
    binaries.set(p.command.file, binary);
    const args = p.role === 'proxy' ? withoutBackendList(p.command.args) : p.command.args;
    return createHash('sha256').update(JSON.stringify([p.command.file, ...args])).update(binary).digest('hex');
  };
  const wanted = processes.map((p) => ({ plan: p, fingerprint: fingerprint(p) }));

  const proxy = processes.at(-1)!;
  const state: FleetState = {
    version: 1,
    fleet: plan.fleet,
    runtime: 'host',
    proxy: { listen: proxy.address, admin: `${LOOPBACK}:${ports.admin}` },
    machines: previous?.machines ?? [],
    resources: previous?.resources ?? {},
  };
  const changes = planChanges(state.machines, wanted, (m) => isOurProcess(m.pid, m.command));
  const { toStart, replaced, rolled, removed } = changes;

  const timeoutMs = options.timeoutMs ?? DEFAULT_UP_TIMEOUT_MS;
  const backends = processes.filter((p) => p.role === 'backend').map((p) => ({ name: p.name, address: p.address }));
  const proxyKept = !toStart.some((w) => w.plan.role === 'proxy');
  const adminEndpoint = (): AdminEndpoint => adminEndpointOf(state, ctx.adminToken());
  const sync = (): Promise<void> =>
    syncBackends({ endpoint: adminEndpoint(), wanted: backends, timeoutMs, pollMs: ADMIN_POLL_MS, progress: ctx.progress });

  if (isUnchanged(changes)) {
    await sync();
    await ctx.progress.step('fleet already up to date; checking health', () => waitHealthy(plan, state, [], ctx, 5_000));
    return state;
  }

  const stopOptions = { timeoutMs: 5_000, force: false };
  if (replaced.length > 0) {
    await ctx.progress.step(`stop ${machineNames(replaced)} (changed or exited)`, () => stopMachines(state, replaced, ctx, stopOptions));
  }
  const started: MachineState[] = [];
  try {
    for (const want of toStart) {
      await ctx.progress.step(`start ${want.plan.name} on ${want.plan.address}`, async () => {
        started.push(startMachine(state, want.plan, want.fingerprint, ctx));
      });
    }
    // A proxy started now has the whole list already; a running one is told through its admin API.
    if (proxyKept) await sync();
    await rollBackends({ endpoint: adminEndpoint(), timeoutMs, pollMs: ADMIN_POLL_MS, progress: ctx.progress }, rolled, async ({ machine, want }) => {
      await stopMachines(state, [machine], ctx, stopOptions);
      started.push(startMachine(state, want.plan, want.fingerprint, ctx));
    });
    await ctx.progress.step(`wait until the proxy reports ${plan.backends.length} backends up`, () =>
      waitHealthy(plan, state, started, ctx, timeoutMs),
    );
  } catch (error) {
    await stopMachines(state, started, ctx, stopOptions);
    if (state.machines.length === 0) ctx.clearState();
    throw error;
  }
  if (removed.length > 0) {
    await ctx.progress.step(`stop ${machineNames(removed)} (scaled down)`, () => stopMachines(state, removed, ctx, stopOptions));
  }
  return state;
}

/** Records the machine as starting, starts it, then records its PID: a kill between leaves a findable trace. */
function startMachine(state: FleetState, p: HostProcessPlan, fingerprint: string, ctx: RuntimeContext): MachineState {
  const machine = recordStarting(state, {
    name: p.name,
    role: p.role,
    address: p.address,
    command: [p.command.file, ...p.command.args],
    log: p.log,
    fingerprint,
  }, ctx);
  recordRunning(state, machine, spawnDetached(p.command, p.log, ctx.projectDir), ctx);
  return machine;
}

/** Marks the machines as stopping, stops them, and drops them from the state. */
async function stopMachines(state: FleetState, machines: readonly MachineState[], ctx: RuntimeContext, options: DownOptions): Promise<void> {
  if (machines.length === 0) return;
  recordStopping(state, machines, ctx);
  // A machine recorded without a PID was being started when uproxy died: only its command
  // line can find it. With --force every recorded command line is searched for, in case a
  // recorded PID is stale.
  const hunted = machines.filter((m) => options.force || m.pid === null).map((m) => m.command);
  const leftovers = hunted.length > 0 ? findProcessesByArgv(hunted) : [];
  const targets = [
    ...machines.map((m) => ({ pid: m.pid, argv: m.command })),
    ...leftovers.map((pid) => ({ pid, argv: machines.find((m) => isOurProcess(pid, m.command))?.command ?? [] })),
  ];
  await stopProcesses(targets, options.timeoutMs);
  forgetMachines(state, machines, ctx);
}

/** Ports: configured ones as given; 0 means keep the fleet's current port, or pick a free one. */
async function assignPorts(plan: FleetPlan, previous: FleetState | null): Promise<HostPorts> {
  const previousPort = (name: string): number | undefined => {
    const machine = previous?.machines.find((m) => m.name === name);
    return machine ? portOf(machine.address) : undefined;
  };
  const config = plan.config.proxy;
  const previousAdmin = previous ? portOf(previous.proxy.admin) : undefined;
  const fixed = [config.port, config.adminPort].filter((p) => p !== 0);
  const kept = plan.backends.map((b) => previousPort(b.name)).filter((p): p is number => p !== undefined);
  const taken = new Set([...fixed, ...kept, previousPort(plan.proxy.name) ?? 0, previousAdmin ?? 0]);
  const needed =
    (config.port === 0 && previousPort(plan.proxy.name) === undefined ? 1 : 0) +
    (config.adminPort === 0 && previousAdmin === undefined ? 1 : 0) +
    plan.backends.filter((b) => previousPort(b.name) === undefined).length;
  const free = await freePorts(needed, taken);
  const next = (): number => free.shift()!;

  const proxy = config.port !== 0 ? config.port : (previousPort(plan.proxy.name) ?? next());
  const admin = config.adminPort !== 0 ? config.adminPort : (previousAdmin ?? next());
  const backends: Record<string, number> = {};
  for (const b of plan.backends) backends[b.name] = previousPort(b.name) ?? next();
  return { proxy, admin, backends };
}

/** A configured port must be free unless this fleet's own proxy already holds it. */
async function checkConfiguredPort(port: number, key: string, previous: FleetState | null, previousPort: number | undefined): Promise<void> {
  if (port === 0) return;
  const ourProxy = previous?.machines.find((m) => m.role === 'proxy');
  if (previousPort === port && ourProxy && isOurProcess(ourProxy.pid, ourProxy.command)) return;
  if (!(await isPortFree(port))) {
    throw new UserError(`${LOOPBACK}:${port} (${key} in uproxy.json) is already in use by another program: choose another port, or 0 to pick a free one`);
  }
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: LOOPBACK, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Asks the kernel for `count` distinct free loopback ports (none of `taken`). */
async function freePorts(count: number, taken: ReadonlySet<number>): Promise<number[]> {
  const servers: ReturnType<typeof createServer>[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < count) {
      const server = createServer();
      servers.push(server);
      const port = await new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => {
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : 0);
        });
      });
      if (!taken.has(port)) ports.push(port);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
  return ports;
}

/** A process started by this `up` that exits fails the wait at once, with its log. */
function waitHealthy(plan: FleetPlan, state: FleetState, started: readonly MachineState[], ctx: RuntimeContext, timeoutMs: number): Promise<void> {
  return waitUntilHealthy({ plan, state, ctx }, {
    timeoutMs,
    pollMs: ADMIN_POLL_MS,
    deadMachine: async () => {
      const dead = started.find((m) => !isOurProcess(m.pid, m.command));
      return dead && { what: `${dead.name} exited right after it was started`, log: dead.log };
    },
  });
}
