import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { appBuildCommands, LOOPBACK, plainHttpListener, planHostProcesses, type FleetPlan, type HostPorts, type HostProcessPlan } from '../fleet/plan.js';
import { stateDir } from '../files.js';
import type { FleetState, MachineState } from '../fleet/state.js';
import { UserError } from '../errors.js';
import { reconcileRenewalService, stopRenewalService } from './acme-renewal.js';
import { adminApiProxy, withoutLiveLists } from './backend-sync.js';
import { buildApp, fileHash, pendingBuilds, sourceHash, type AppBuild } from './build.js';
import { inFleetOrder, reconcile, stopMachines, type MachineDriver, type Wanted } from './machines.js';
import { isProjectMark, liveMarks, machineMark, markedProcesses, spawnMachine, stopMarked } from './process-groups.js';
import { releaseService, removeService, requireS6, serviceDir as supervisedDir, serviceStatus, writeService, type RestartPolicy, type Service, type ServiceStatus } from './s6.js';
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
    if (plan.config.restart === 'on-failure') requireS6();
    const ourPort = (name: string): number | undefined => {
      const machine = previous?.machines.find((m) => m.name === name);
      return machine ? portOf(machine.address) : undefined;
    };
    const ours = (m: MachineState): boolean => liveMarks([machineMark(plan.projectDir, m.name)]).size > 0;
    const publish = plan.config.proxy.publish;
    if (publish === undefined) await checkConfiguredPort(LOOPBACK, plan.config.proxy.port, 'proxy.port', previous, ourPort(plan.proxy.name), ours);
    else await checkConfiguredPort(publish.slice(0, publish.lastIndexOf(':')), Number(publish.slice(publish.lastIndexOf(':') + 1)), 'proxy.publish', previous, ourPort(plan.proxy.name), ours);
    await checkConfiguredPort(LOOPBACK, plan.config.proxy.adminPort, 'proxy.adminPort', previous, previous ? portOf(previous.proxy.admin) : undefined, ours);
    const plainHttp = plainHttpListener(plan.config);
    if (plainHttp !== undefined) {
      const key = plan.config.proxy.publishHttp === undefined ? 'proxy.publishHttp, port 80 of proxy.publish by default with ACME http-01,' : 'proxy.publishHttp';
      await checkConfiguredPort(plainHttp.slice(0, plainHttp.lastIndexOf(':')), portOf(plainHttp), key, previous, previousPlainHttpPort(previous), ours);
    }
  },

  async build(plan, ctx) {
    for (const build of appBuilds(plan)) await buildApp(ctx.projectDir, build, ctx.progress);
  },

  async up(plan, previous, ctx, options) {
    return upHost(plan, previous, ctx, options);
  },

  async down(state, ctx, options) {
    await stopRenewalService(ctx.projectDir, options.timeoutMs);
    const machines = driver(ctx);
    await stopMachines(state, state.machines, machines, ctx, options);
    await machines.cleanup(state);
  },

  async refresh(plan, state, ctx) {
    resupervise(plan, planHostProcesses(plan, await assignPorts(plan, state), logDir(ctx)), ctx);
  },

  async inspect(state, ctx) {
    const alive = liveMarks(state.machines.map((m) => machineMark(ctx.projectDir, m.name)));
    return Promise.all(inFleetOrder(state.machines).map(async (m): Promise<MachineStatus> => {
      const supervised = await serviceStatus(serviceDir(ctx, m.name));
      const running = alive.has(machineMark(ctx.projectDir, m.name)) && (supervised === null || supervised.up || supervised.wantedUp);
      return {
        name: m.name,
        role: m.role,
        address: m.address,
        pid: supervised ? supervised.pid : m.pid,
        state: m.status === 'running' ? (running ? 'running' : 'exited') : m.status,
        ...(supervised ? { restarts: supervised.restarts } : {}),
      };
    }));
  },

  async describe(plan, previous, ctx) {
    const ports = await assignPorts(plan, previous);
    return [...appBuildCommands(plan), ...planHostProcesses(plan, ports, logDir(ctx)).map((p) => p.command)];
  },

  async preview(plan, state, ctx) {
    const pending = pendingBuilds(ctx.projectDir, appBuilds(plan));
    // What a rebuild produces is not known before it runs: the machines running it count as changed.
    const rebuilt = new Set(pending.flatMap(({ build }) => (build.artifact === undefined ? [] : [build.artifact])));
    const { wanted } = await wantedProcesses(plan, state, ctx, rebuilt);
    return {
      steps: pending.map(({ build, reason }) => `build ${build.label} (${reason})`),
      wanted,
      running: await driver(ctx).running(),
    };
  },
};

/** The proxy's build, and the backend app's unless it is your own app without a Makefile (a script: its command names what runs). */
function appBuilds(plan: FleetPlan): AppBuild[] {
  const builds: AppBuild[] = [{ label: 'proxy', dir: plan.proxy.app.dir, artifact: plan.proxy.app.binary }];
  const backendApp = plan.backends[0]?.app;
  const own = plan.config.backends.command !== undefined;
  if (backendApp && (!own || existsSync(join(backendApp.dir, 'Makefile')))) {
    builds.push({ label: 'backend', dir: backendApp.dir, artifact: own ? undefined : backendApp.binary });
  }
  return builds;
}

function logDir(ctx: RuntimeContext): string {
  return join(stateDir(ctx.projectDir), 'logs');
}

/**
 * The planned processes with their fingerprints. `rebuilt` names binaries a build is about to
 * replace (the dry run's guess, which cannot hash a binary not built yet); `up` passes none.
 */
async function wantedProcesses(plan: FleetPlan, previous: FleetState | null, ctx: RuntimeContext, rebuilt: ReadonlySet<string> = new Set()): Promise<{ ports: HostPorts; processes: HostProcessPlan[]; wanted: Wanted<HostProcessPlan>[] }> {
  const ports = await assignPorts(plan, previous);
  const processes = planHostProcesses(plan, ports, logDir(ctx));
  const contents = new Map<string, string>();
  // What it runs: the binary, or for your own app (backends.command) its sources, whatever its command names.
  const content = (p: HostProcessPlan): string => {
    const own = p.role === 'backend' && plan.config.backends.command !== undefined;
    const key = own ? p.cwd : p.command.file;
    if (!own && rebuilt.has(key)) return 'rebuilt';
    const hash = contents.get(key) ?? (own ? sourceHash(p.cwd) : fileHash(p.command.file));
    contents.set(key, hash);
    return hash;
  };
  const fingerprint = (p: HostProcessPlan): string => {
    const args = p.role === 'proxy' ? withoutLiveLists(p.command.args) : p.command.args;
    // The restart policy too: a machine moves under (or out from) its supervisor by a restart.
    return createHash('sha256').update(JSON.stringify([p.command.file, ...args, p.env, plan.config.restart])).update(content(p)).digest('hex');
  };
  return { ports, processes, wanted: processes.map((p) => ({ plan: p, fingerprint: fingerprint(p) })) };
}

async function upHost(plan: FleetPlan, previous: FleetState | null, ctx: RuntimeContext, options: UpOptions): Promise<FleetState> {
  const { ports, processes, wanted } = await wantedProcesses(plan, previous, ctx);
  const proxy = processes.at(-1)!;
  const { mode: tls, acme } = plan.config.proxy.tls;
  const state: FleetState = {
    version: 1,
    fleet: plan.fleet,
    runtime: 'host',
    proxy: { listen: proxy.address, admin: `${LOOPBACK}:${ports.admin}`, ...(tls === 'off' ? {} : { tls }), ...(acme ? { serverName: acme.domains[0] } : {}) },
    machines: previous?.machines ?? [],
    resources: previous?.resources ?? {},
  };
  const timeoutMs = options.timeoutMs ?? DEFAULT_UP_TIMEOUT_MS;
  const backends = processes.filter((p) => p.role === 'backend').map((p) => ({ name: p.name, address: p.address }));
  const machines = driver(ctx, plan.config.restart);
  const result = await reconcile({
    state,
    wanted,
    driver: machines,
    proxy: adminApiProxy({ plan, state, ctx, backends, timeoutMs }),
    ctx,
    timeoutMs,
  });
  resupervise(plan, processes, ctx);
  await reconcileRenewalService(plan, timeoutMs);
  return result;
}

/**
 * A proxy that kept running got its new backend list (or tokens) through the admin API: its
 * supervisor must restart it with that list too, should it crash.
 */
function resupervise(plan: FleetPlan, processes: readonly HostProcessPlan[], ctx: RuntimeContext): void {
  const machines = driver(ctx, plan.config.restart);
  for (const p of processes) if (existsSync(serviceDir(ctx, p.name))) machines.refresh(p);
}

function serviceDir(ctx: RuntimeContext, name: string): string {
  return supervisedDir(stateDir(ctx.projectDir), name);
}

/**
 * Process groups, known by their mark: a machine runs while some process carries it, so a
 * launcher that exec'd or forked its server, or one recorded without a PID because uproxy died
 * while starting it, is still found and stopped whole. With the `on-failure` restart policy
 * each runs under its own s6-supervise (s6.ts), which carries the mark too: the recorded PID is
 * the supervisor's, and s6 knows the machine's current one.
 */
function driver(ctx: RuntimeContext, policy?: RestartPolicy): MachineDriver<HostProcessPlan> & { refresh(p: HostProcessPlan): void } {
  const mark = (name: string): string => machineMark(ctx.projectDir, name);
  // The policy only matters to start machines: `down` stops supervised and plain ones alike.
  const service = (p: HostProcessPlan): Service => ({ dir: serviceDir(ctx, p.name), command: p.command, cwd: p.cwd, env: p.env, policy: policy ?? 'no' });
  // Machines this up started under a supervisor: one that has crashed since is reported with its
  // log at once, rather than restarted by s6 in a loop until the health wait times out.
  const started = new Set<string>();
  return {
    record: (p) => ({ address: p.address, command: [p.command.file, ...p.command.args], log: p.log }),
    start: async (p) => {
      if (policy !== 'on-failure') {
        removeService(serviceDir(ctx, p.name));
        return spawnMachine(p.command, { log: p.log, cwd: p.cwd, mark: mark(p.name), env: p.env });
      }
      writeService(service(p));
      started.add(p.name);
      return spawnMachine({ file: 's6-supervise', args: [serviceDir(ctx, p.name)] }, { log: p.log, cwd: serviceDir(ctx, p.name), mark: mark(p.name) });
    },
    stop: async (machines: readonly MachineState[], options: DownOptions) => {
      // Told first, so no supervisor restarts what is being stopped.
      await Promise.all(machines.map((m) => releaseService(serviceDir(ctx, m.name))));
      await stopMarked(machines.map((m) => mark(m.name)), options.timeoutMs);
      for (const m of machines) removeService(serviceDir(ctx, m.name));
    },
    running: async () => {
      const alive = new Set(markedProcesses((m) => isProjectMark(m, ctx.projectDir)).values());
      const statuses = await serviceStatuses(ctx);
      // Between a crash and the restart, a supervised machine is still running as far as up
      // goes, unless this up just started it: then the crash is the answer.
      return (m) => {
        const status = statuses.get(m.name);
        const released = status !== undefined && status !== null && !status.up && !status.wantedUp;
        const crashedAtStart = started.has(m.name) && (status?.restarts ?? 0) > 0;
        return alive.has(mark(m.name)) && !released && !crashedAtStart;
      };
    },
    cleanup: async (state) => {
      if (state.machines.length > 0) return;
      rmSync(join(stateDir(ctx.projectDir), 'supervise'), { recursive: true, force: true });
      ctx.clearState();
    },
    refresh: (p) => writeService(service(p)),
  };
}

/** What s6 says of each supervised machine (null: its directory is there, its supervisor is not). */
async function serviceStatuses(ctx: RuntimeContext): Promise<Map<string, ServiceStatus | null>> {
  const dir = join(stateDir(ctx.projectDir), 'supervise');
  const names = existsSync(dir) ? readdirSync(dir) : [];
  return new Map(await Promise.all(names.map(async (name) => [name, await serviceStatus(join(dir, name))] as const)));
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
async function checkConfiguredPort(host: string, port: number, key: string, previous: FleetState | null, previousPort: number | undefined, running: (m: MachineState) => boolean): Promise<void> {
  if (port === 0) return;
  const ourProxy = previous?.machines.find((m) => m.role === 'proxy');
  if (previousPort === port && ourProxy && running(ourProxy)) return;
  if (!(await isPortFree(host, port))) {
    throw new UserError(`${host}:${port} (${key} in uproxy.json) is already in use by another program, or not an address of this host: choose another${key.startsWith('proxy.publish') ? '' : ' port, or 0 to pick a free one'}`);
  }
}

/** The port of the plain HTTP listener the recorded proxy was started with (its `--redirect-listen`). */
function previousPlainHttpPort(previous: FleetState | null): number | undefined {
  const command = previous?.machines.find((m) => m.role === 'proxy')?.command ?? [];
  const at = command.indexOf('--redirect-listen');
  return at < 0 || at + 1 >= command.length ? undefined : portOf(command[at + 1]!);
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
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
