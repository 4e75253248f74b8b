import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { readToken } from '../config/tokens.js';
import { statePath } from '../files.js';
import type { FleetState } from '../fleet/state.js';
import { SILENT } from '../progress.js';
import { loadRuntime, type MachineStatus } from '../runtimes/runtime.js';
import type { MachineRow } from './output.js';

export interface Listing {
  state: FleetState | null;
  machines: MachineRow[];
  /** Why the proxy's view of backend health is missing, if it is. */
  healthUnknown?: string;
  /** When the certificate an HTTPS proxy serves expires (Unix seconds), as its /stats says. */
  certificateExpiry?: number;
  /** Who issued it (its issuer's common name), from proxies that say. */
  certificateIssuer?: string;
}


/** The recorded machines, each with its process state and, when the proxy answers, its health. */
export async function listMachines(dir: string): Promise<Listing> {
  const projectDir = resolve(dir);
  // No fleet is the common case: answer it without loading zod, the state schema or a runtime.
  if (!existsSync(statePath(projectDir))) return { state: null, machines: [] };
  const [{ readState }, { runtimeContext }] = await Promise.all([import('../fleet/state.js'), import('./context.js')]);
  const state = readState(projectDir);
  if (!state) return { state: null, machines: [] };
  const runtime = await loadRuntime(state.runtime);
  return withHealth(projectDir, state, await runtime.inspect(state, runtimeContext(projectDir, SILENT)));
}

/** The machines with the proxy's view of each (`up`/`down`/`draining`, `serving` for the proxy itself). */
export async function withHealth(projectDir: string, state: FleetState, inspected: readonly MachineStatus[]): Promise<Listing> {
  const machines: MachineRow[] = inspected.map((m) => ({ ...m }));
  try {
    const { adminEndpointOf, fetchStats } = await import('../stats/client.js');
    const stats = await fetchStats(adminEndpointOf(state, readToken(projectDir, 'admin')), 1000);
    for (const machine of machines) {
      const seen = stats.backends.find((b) => b.name === machine.name);
      if (seen) machine.health = seen.state;
      if (machine.role === 'proxy') machine.health = 'serving';
    }
    const served = stats.tls?.enabled ? stats.tls.certificates[0] : undefined;
    return {
      state,
      machines,
      ...(served === undefined ? {} : { certificateExpiry: served.not_after }),
      ...(served?.issuer === undefined ? {} : { certificateIssuer: served.issuer }),
    };
  } catch (error) {
    return { state, machines, healthUnknown: (error as Error).message };
  }
}

/**
 * Why a fleet that is recorded has no proxy running, if so: every client request fails then,
 * so `ps` and `status` say it in words and exit non-zero rather than list the backends.
 */
export function missingProxy(listing: Listing): string | undefined {
  if (!listing.state) return undefined;
  const proxy = listing.machines.find((m) => m.role === 'proxy');
  if (!proxy) return `fleet ${listing.state.fleet} has no proxy: no client request is served; \`uproxy up\` starts one`;
  if (proxy.state !== 'running') return `the proxy of fleet ${listing.state.fleet} is not running (${proxy.state}): no client request is served; \`uproxy up\` starts it again`;
  return undefined;
}

/** The `ps --json` document: null fields when no fleet runs here. */
export function listingJson(listing: Listing): unknown {
  const { state, machines } = listing;
  return {
    fleet: state?.fleet ?? null,
    runtime: state?.runtime ?? null,
    proxy: state?.proxy ?? null,
    machines,
    proxyMissing: missingProxy(listing) ?? null,
    certificateExpiry: listing.certificateExpiry ?? null,
    certificateIssuer: listing.certificateIssuer ?? null,
  };
}
