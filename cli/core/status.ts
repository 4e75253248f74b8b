import { resolve } from 'node:path';
import type { HttpsMode } from '../config/schema.js';
import { readToken } from '../config/tokens.js';
import { readState, statePath } from '../fleet/state.js';
import type { StatsSeries } from '../stats/rates.js';
import { adminEndpointOf, fetchStats, setBackendDrain, type AdminEndpoint } from '../stats/client.js';
import type { ProxyStats } from '../stats/schema.js';
import { UserError } from '../errors.js';

/**
 * `uproxy status`: which proxy to watch (from the state file and the admin token), one snapshot
 * of it for scripts, or the live screen. The command only parses options and prints.
 */

/** What the command knows about the fleet it watches (from its state file). */
export interface FleetInfo {
  name: string;
  runtime: string;
  /** Where clients connect, e.g. `127.0.0.1:8080`. */
  proxyAddress: string;
  /** Set when the proxy serves HTTPS (its TLS mode). */
  tls?: HttpsMode;
}

/** What became of a drain or undrain the user asked for (`d`). */
export type DrainOutcome = { kind: 'done' } | { kind: 'unavailable' } | { kind: 'failed'; message: string };

interface Watched {
  fleet: FleetInfo;
  admin: string;
  endpoint: AdminEndpoint;
  fetch: () => Promise<ProxyStats>;
  /** Each machine's restarts by its supervisor, as `ps` shows them. */
  restarts: () => Promise<Readonly<Record<string, number>>>;
}

function watch(dir: string, intervalMs: number): Watched {
  const projectDir = resolve(dir);
  const state = readState(projectDir);
  if (!state) throw new UserError(`no fleet is running in ${projectDir} (${statePath(projectDir)} does not exist); start one with \`uproxy up\``);
  const endpoint = adminEndpointOf(state, readToken(projectDir, 'admin'));
  return {
    fleet: { name: state.fleet, runtime: state.runtime, proxyAddress: state.proxy.listen, ...(state.proxy.tls ? { tls: state.proxy.tls } : {}) },
    admin: state.proxy.admin,
    endpoint,
    fetch: () => fetchStats(endpoint, Math.max(2000, intervalMs)),
    restarts: async () => {
      const [{ loadRuntime }, { runtimeContext }, { SILENT }] = await Promise.all([import('../runtimes/runtime.js'), import('./context.js'), import('../progress.js')]);
      const machines = await (await loadRuntime(state.runtime)).inspect(state, runtimeContext(projectDir, SILENT));
      return Object.fromEntries(machines.flatMap((m) => (m.restarts === undefined ? [] : [[m.name, m.restarts]])));
    },
  };
}

export interface StatusSnapshot {
  fleet: FleetInfo;
  admin: string;
  intervalMs: number;
  /** Two samples one interval apart: rates are deltas of the proxy's counters. */
  series: StatsSeries;
}

export async function statusSnapshot(dir: string, intervalMs: number): Promise<StatusSnapshot> {
  const { fleet, admin, fetch } = watch(dir, intervalMs);
  const { sampleTwice } = await import('../tui/poller.js');
  const series = await sampleTwice(fetch, intervalMs).catch(async (error: Error) => {
    await refuseWithoutProxy(dir);
    throw new UserError(`${error.message}; is the fleet up? \`uproxy ps\` shows its machines`);
  });
  return { fleet, admin, intervalMs, series };
}

/** A fleet without a running proxy has nothing to show: said plainly, as an error. */
async function refuseWithoutProxy(dir: string): Promise<void> {
  const { listMachines, missingProxy } = await import('./ps.js');
  const missing = missingProxy(await listMachines(dir));
  if (missing) throw new UserError(missing);
}

/** The `--json` document: the fleet, the latest stats and the rates. */
export function statusJson(snapshot: StatusSnapshot): unknown {
  const { fleet, admin, intervalMs, series } = snapshot;
  return { fleet: { ...fleet, admin }, intervalMs, stats: series.latest.stats, rates: series.rates };
}

/** The live screen until the user quits; `d` drains or undrains through the admin API. */
export async function liveStatus(dir: string, intervalMs: number): Promise<void> {
  const { fleet, endpoint, fetch, restarts } = watch(dir, intervalMs);
  await refuseWithoutProxy(dir);
  const drain = async (name: string, drain: boolean): Promise<DrainOutcome> => {
    try {
      return (await setBackendDrain(endpoint, name, drain)) ? { kind: 'done' } : { kind: 'unavailable' };
    } catch (error) {
      return { kind: 'failed', message: (error as Error).message };
    }
  };
  const { runLiveStatus } = await import('../tui/status-app.js');
  await runLiveStatus({ fleet, intervalMs, fetch, restarts, drain });
}
