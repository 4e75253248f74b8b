/**
 * Scaling a running fleet without restarting its proxy (host, qemu and kraft runtimes), and its
 * client tokens changed the same way (`syncTokens`). The proxy
 * gets its backend list on its command line only when it starts; after that, the backends a
 * plan adds are POSTed to its admin API and waited for until up, and the ones a plan drops
 * are DELETEd (the proxy drains them: no new requests, in-flight ones finish) and waited for
 * until `/stats` no longer lists them. Only then does the runtime stop their processes or
 * VMs, so no client request meets a backend that is going away.
 *
 * The difference is taken against what the proxy itself lists, not against the state file,
 * so a scaling that an earlier, interrupted `up` left half done is completed too.
 */
import type { ClientToken } from '../config/schema.js';
import { expirySeconds, type FleetPlan } from '../fleet/plan.js';
import type { FleetState } from '../fleet/state.js';
import type { Progress } from '../progress.js';
import { adminEndpointOf, adminRequest, AdminApiError, deleteToken, fetchStats, listTokens, putToken, setBackendDrain, type AdminEndpoint } from '../stats/client.js';
import type { ProxyStats } from '../stats/schema.js';
import { UserError } from '../errors.js';
import { passedChecks, waitUntilHealthy } from './health-wait.js';
import { WAIT_POLICY, type FleetProxy } from './machines.js';
import { sleep } from './processes.js';
import type { RuntimeContext } from './runtime.js';

export interface SyncedBackend {
  name: string;
  /** `host:port` the proxy connects to. */
  address: string;
}

export interface BackendSync {
  endpoint: AdminEndpoint;
  /** Every backend the proxy should route to once the sync is done. */
  wanted: readonly SyncedBackend[];
  /** For each of the two waits (added backends up, removed ones gone). */
  timeoutMs: number;
  progress: Progress;
}

/** The running proxy of `state` as `reconcile` drives it: through its admin API. */
export interface AdminApiFleet {
  plan: FleetPlan;
  /** The state `reconcile` keeps: its proxy's admin address is read at each call. */
  state: FleetState;
  ctx: RuntimeContext;
  /** Every planned backend and the address the proxy reaches it at. */
  backends: readonly SyncedBackend[];
  timeoutMs: number;
  /** Said after a health-wait timeout, e.g. where else to look. */
  hint?: string;
}

export function adminApiProxy(fleet: AdminApiFleet): FleetProxy {
  const sync = (): Omit<BackendSync, 'wanted'> => ({
    endpoint: adminEndpointOf(fleet.state, fleet.ctx.adminToken()),
    timeoutMs: fleet.timeoutMs,
    progress: fleet.ctx.progress,
  });
  return {
    sync: async () => {
      // Backends first: their sync waits until the proxy answers.
      await syncBackends({ ...sync(), wanted: fleet.backends });
      await syncTokens(sync().endpoint, fleet.plan.config.proxy.tokens, fleet.ctx.progress);
    },
    roll: (name, replace) => rollBackend(sync(), name, replace),
    waitHealthy: (timeoutMs, dead, since) =>
      waitUntilHealthy(fleet, { timeoutMs, deadMachine: dead, since, hint: fleet.hint }),
    healthMarks: async () => passedChecks(await fetchStats(sync().endpoint)),
    downBackends: async () => (await fetchStats(sync().endpoint)).backends.filter((b) => b.state === 'down').map((b) => b.name),
  };
}

/**
 * The proxy's arguments without its `--backend` and `--token` lists: what decides whether a
 * running proxy must be restarted. Its backends and tokens change through the admin API instead.
 */
export function withoutLiveLists(args: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--backend' || args[i] === '--token') i++;
    else kept.push(args[i]!);
  }
  return kept;
}

/**
 * Brings the running proxy's client tokens to uproxy.json's: every one is PUT (the proxy's list
 * has no hashes to compare, and a PUT of an unchanged token changes nothing, its counters
 * included), then those it lists beyond them are revoked, so it never has none.
 */
export async function syncTokens(endpoint: AdminEndpoint, wanted: readonly ClientToken[], progress: Progress): Promise<void> {
  const listed = (await listTokens(endpoint)).map((t) => t.name);
  const added = wanted.filter((t) => !listed.includes(t.name)).map((t) => t.name);
  const put = async (): Promise<void> => {
    for (const t of wanted) await putToken(endpoint, { name: t.name, sha256: t.sha256, ...(t.expires ? { expires: expirySeconds(t.expires) } : {}) });
  };
  if (added.length > 0) await progress.step(`add token ${added.join(', ')} to the proxy`, put);
  else await put();
  const stale = listed.filter((name) => !wanted.some((t) => t.name === name));
  if (stale.length > 0) {
    await progress.step(`revoke token ${stale.join(', ')} in the proxy`, async () => {
      for (const name of stale) await deleteToken(endpoint, name);
    });
  }
}

/** Brings the running proxy's backends to `wanted`: adds first, then drains and removes. */
export async function syncBackends(sync: BackendSync): Promise<void> {
  let listed: ProxyStats['backends'] = [];
  await waitForProxy(sync, 'its backends', (stats) => {
    listed = stats.backends;
    return null;
  });
  const isWanted = (b: SyncedBackend): boolean => sync.wanted.some((w) => w.name === b.name && w.address === b.address);
  const added = sync.wanted.filter((w) => !listed.some((b) => b.name === w.name && b.address === w.address));
  const stale = listed.filter((b) => !isWanted(b)).map((b) => b.name);
  // A backend listed at another address must go before its name can be added again.
  const moved = stale.filter((name) => added.some((a) => a.name === name));
  if (moved.length > 0) await removeBackends(sync, moved);
  if (added.length > 0) {
    await sync.progress.step(`add ${added.map((b) => b.name).join(', ')} to the proxy`, async () => {
      for (const backend of added) await addBackend(sync.endpoint, backend);
      await waitForProxy(sync, 'the added backends up', (stats) => {
        const notUp = added.filter((a) => stats.backends.find((b) => b.name === a.name)?.state !== 'up');
        return notUp.length === 0 ? null : `not up yet: ${notUp.map((b) => b.name).join(', ')}`;
      });
    });
  }
  const removed = stale.filter((name) => !moved.includes(name));
  if (removed.length > 0) await removeBackends(sync, removed);
  // A backend `up` wants is not left draining: a restart one at a time that was interrupted
  // (or a drain from `status`) would otherwise keep it out of rotation for good.
  const drained = listed.filter((b) => b.state === 'draining' && isWanted(b)).map((b) => b.name);
  if (drained.length > 0) {
    await sync.progress.step(`undrain ${drained.join(', ')}`, async () => {
      for (const name of drained) await setBackendDrain(sync.endpoint, name, false);
    });
  }
}

/**
 * Replaces one running backend behind a running proxy, so the others carry the traffic
 * meanwhile: drain it (no new requests; in-flight ones finish, idle pooled connections close),
 * `replace` it, wait until a health check of the proxy passes on the new instance (checks go
 * on while draining), undrain, and wait until the proxy reports it up.
 */
export async function rollBackend(sync: Omit<BackendSync, 'wanted'>, name: string, replace: () => Promise<void>): Promise<void> {
  const passed = (stats: ProxyStats): number => passedChecks(stats)[name] ?? 0;
  await setBackendDrain(sync.endpoint, name, true);
  // Not only no request in flight: no connection of the proxy's open either, so a hard stop of
  // the machine (QMP `quit` sends no FIN) leaves the proxy nothing pooled to a vanished peer.
  await waitForProxy(sync, `${name} drained`, (stats) => {
    const backend = stats.backends.find((b) => b.name === name);
    if (!backend) return null;
    const open = backend.active_connections + backend.idle_connections;
    return backend.in_flight === 0 && open === 0 ? null : `${name} still has ${backend.in_flight} requests in flight, ${open} connections open`;
  });
  await replace();
  const before = passed(await fetchStats(sync.endpoint));
  await waitForProxy(sync, `a passing health check of the new ${name}`, (stats) =>
    passed(stats) > before ? null : `no health check of the new ${name} has passed yet`);
  await setBackendDrain(sync.endpoint, name, false);
  await waitForProxy(sync, `${name} up again`, (stats) => {
    const state = stats.backends.find((b) => b.name === name)?.state ?? 'not listed';
    return state === 'up' ? null : `${name} is ${state}`;
  });
}

async function removeBackends(sync: BackendSync, removed: readonly string[]): Promise<void> {
  await sync.progress.step(`drain and remove ${removed.join(', ')} from the proxy`, async () => {
    for (const name of removed) await deleteBackend(sync.endpoint, name);
    await waitForProxy(sync, `${removed.join(', ')} removed`, (stats) => {
      const still = stats.backends.filter((b) => removed.includes(b.name));
      return still.length === 0 ? null : `still listed: ${still.map((b) => `${b.name} (${b.state}, ${b.in_flight} in flight)`).join(', ')}`;
    });
  });
}

export async function addBackend(endpoint: AdminEndpoint, backend: SyncedBackend): Promise<void> {
  try {
    await adminRequest(endpoint, 'POST', '/backends', undefined, { name: backend.name, address: backend.address });
  } catch (error) {
    // 409: an earlier, interrupted `up` added it already; the wait below checks it is up.
    if (!(error instanceof AdminApiError && error.status === 409)) throw error;
  }
}

export async function deleteBackend(endpoint: AdminEndpoint, name: string): Promise<void> {
  try {
    await adminRequest(endpoint, 'DELETE', `/backends/${encodeURIComponent(name)}`);
  } catch (error) {
    if (!(error instanceof AdminApiError && error.status === 404)) throw error;
  }
}

/** Polls `/stats` until `problem` returns null; a timeout is an error naming the last problem. */
async function waitForProxy(sync: Omit<BackendSync, 'wanted'>, goal: string, problem: (stats: ProxyStats) => string | null): Promise<void> {
  const deadline = Date.now() + sync.timeoutMs;
  let last = 'the proxy has not answered yet';
  while (Date.now() < deadline) {
    try {
      const found = problem(await fetchStats(sync.endpoint));
      if (found === null) return;
      last = found;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(WAIT_POLICY.pollMs);
  }
  throw new UserError(`the proxy did not report ${goal} within ${Math.round(sync.timeoutMs / 1000)} s: ${last}; see .uproxy/logs/`);
}
