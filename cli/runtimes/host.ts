import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { appBuildCommands, LOOPBACK, planHostProcesses, type FleetPlan, type HostPorts, type HostProcessPlan } from '../fleet/plan.js';
import { stateDir } from '../files.js';
import type { FleetState, MachineState } from '../fleet/state.js';
import { UserError } from '../errors.js';
import { adminApiProxy, withoutBackendList } from './backend-sync.js';
import { buildApp, fileHash, sourceHash } from './build.js';
import { inFleetOrder, reconcile, stopMachines, type MachineDriver } from './machines.js';
import { isProjectMark, liveMarks, machineMark, markedProcesses, spawnMachine, stopMarked } from './process-groups.js';
import type { DownOptions, MachineStatus, Runtime, RuntimeContext, UpOptions } from './runtime.js';

/**
 * The `host` runtime: the proxy and each backend as a local process on 127.0.0.1, each in a
 * process group of its own, marked so that a launcher script and what it starts are one
 * machine (process-groups.ts). `up` reconciles: a machine whose processes are alive and whose
 * command and binary (or, for your own app, its sources) are unchanged is left alone;
 * everything else is (re)started. Scaling keeps the proxy running: its backend
 * list is not part of its fingerprint, and the change goes through its admin API
 * (backend-sync.ts). A proxy that does start gets the whole current list on its command line.
 */

/** Local processes come up in milliseconds; the time goes to the proxy's first health checks. */
const DEFAULT_UP_TIMEOUT_MS = 30_000;

export const runtime: Runtime = {
  name: 'host',
  keyOverAdminApi: true,

  async preflight(plan, previous) {
    const ourPort = (name: string): number | undefined => {
      const machine = previous?.machines.find((m) => m.name === name);
      return machine ? portOf(machine.address) : undefined;
    };
    const ours = (m: MachineState): boolean => liveMarks([machineMark(plan.projectDir, m.name)]).size > 0;
    await checkConfiguredPort(plan.config.proxy.port, 'proxy.port', previous, ourPort(plan.proxy.name), ours);
    await checkConfiguredPort(plan.config.proxy.adminPort, 'proxy.adminPort', previous, previous ? portOf(previous.proxy.admin) : undefined, ours);
  },

  async build(plan, ctx) {
    await buildApp(ctx.projectDir, { label: 'proxy', dir: plan.proxy.app.dir, artifact: plan.proxy.app.binary }, ctx.progress);
    const backendApp = plan.backends[0]?.app;
    if (!backendApp) return;
    // Your own app may need no build (a script); its command names what runs, not a binary.
    const own = plan.config.backends.command !== undefined;
    if (own && !existsSync(join(backendApp.dir, 'Makefile'))) return;
    await buildApp(ctx.projectDir, { label: 'backend', dir: backendApp.dir, artifact: own ? undefined : backendApp.binary }, ctx.progress);
  },

  async up(plan, previous, ctx, options) {
    return upHost(plan, previous, ctx, options);
  },

  async down(state, ctx, options) {
    const machines = driver(ctx);
    await stopMachines(state, state.machines, machines, ctx, options);
    await machines.cleanup(state);
  },

  async inspect(state, ctx) {
    const alive = liveMarks(state.machines.map((m) => machineMark(ctx.projectDir, m.name)));
    return inFleetOrder(state.machines).map((m): MachineStatus => ({
      name: m.name,
      role: m.role,
      address: m.address,
      pid: m.pid,
      state: m.status === 'running' ? (alive.has(machineMark(ctx.projectDir, m.name)) ? 'running' : 'exited') : m.status,
    }));
  },

  async describe(plan, previous, ctx) {
    const ports = await assignPorts(plan, previous);
    return [...appBuildCommands(plan), ...planHostProcesses(plan, ports, logDir(ctx)).map((p) => p.command)];
  },
};

function logDir(ctx: RuntimeContext): string {
  return join(stateDir(ctx.projectDir), 'logs');
}

async function upHost(plan: FleetPlan, previous: FleetState | null, ctx: RuntimeContext, options: UpOptions): Promise<FleetState> {
  const ports = await assignPorts(plan, previous);
  const processes = planHostProcesses(plan, ports, logDir(ctx));
  const contents = new Map<string, string>();
  // What it runs: the binary, or for your own app (backends.command) its sources, whatever its command names.
  const content = (p: HostProcessPlan): string => {
    const own = p.role === 'backend' && plan.config.backends.command !== undefined;
    const key = own ? p.cwd : p.command.file;
    const hash = contents.get(key) ?? (own ? sourceHash(p.cwd) : fileHash(p.command.file));
    contents.set(key, hash);
    return hash;
  };
  const fingerprint = (p: HostProcessPlan): string => {
    const args = p.role === 'proxy' ? withoutBackendList(p.command.args) : p.command.args;
    return createHash('sha256').update(JSON.stringify([p.command.file, ...args, p.env])).update(content(p)).digest('hex');
  };

  const proxy = processes.at(-1)!;
  const { mode: tls } = plan.config.proxy.tls;
  const state: FleetState = {
    version: 1,
    fleet: plan.fleet,
    runtime: 'host',
    proxy: { listen: proxy.address, admin: `${LOOPBACK}:${ports.admin}`, ...(tls === 'off' ? {} : { tls }) },
    machines: previous?.machines ?? [],
    resources: previous?.resources ?? {},
  };
  const timeoutMs = options.timeoutMs ?? DEFAULT_UP_TIMEOUT_MS;
  const backends = processes.filter((p) => p.role === 'backend').map((p) => ({ name: p.name, address: p.address }));
  return reconcile({
    state,
    wanted: processes.map((p) => ({ plan: p, fingerprint: fingerprint(p) })),
    driver: driver(ctx),
    proxy: adminApiProxy({ plan, state, ctx, backends, timeoutMs }),
    ctx,
    timeoutMs,
  });
}

/**
 * Process groups, known by their mark: a machine runs while some process carries it, so a
 * launcher that exec'd or forked its server, or one recorded without a PID because uproxy died
 * while starting it, is still found and stopped whole.
 */
function driver(ctx: RuntimeContext): MachineDriver<HostProcessPlan> {
  const mark = (name: string): string => machineMark(ctx.projectDir, name);
  return {
    record: (p) => ({ address: p.address, command: [p.command.file, ...p.command.args], log: p.log }),
    start: async (p) => spawnMachine(p.command, { log: p.log, cwd: p.cwd, mark: mark(p.name), env: p.env }),
    stop: (machines: readonly MachineState[], options: DownOptions) => stopMarked(machines.map((m) => mark(m.name)), options.timeoutMs),
    running: async () => {
      const alive = new Set(markedProcesses((m) => isProjectMark(m, ctx.projectDir)).values());
      return (m) => alive.has(mark(m.name));
    },
    cleanup: async (state) => {
      if (state.machines.length === 0) ctx.clearState();
    },
  };
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
async function checkConfiguredPort(port: number, key: string, previous: FleetState | null, previousPort: number | undefined, running: (m: MachineState) => boolean): Promise<void> {
  if (port === 0) return;
  const ourProxy = previous?.machines.find((m) => m.role === 'proxy');
  if (previousPort === port && ourProxy && running(ourProxy)) return;
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
