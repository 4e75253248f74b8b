import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { FleetPlan } from '../fleet/plan.js';
import { stateDir } from '../files.js';
import { machineMark, spawnMachine, stopMarked } from './process-groups.js';
import { releaseService, removeService, serviceDir, serviceStatus, writeService } from './s6.js';

/**
 * Renewal with nobody's hands on it: beside a host fleet with an ACME certificate, the fleet's
 * supervisor (s6, as for its machines) keeps a loop running that calls `uproxy cert renew
 * --scheduled` twice a day. That asks the CA only when the certificate is due and respects the
 * backoff after failures; it is quiet otherwise, and logs to `.uproxy/logs/acme-renewal.log`. It
 * sleeps first: `up` has just checked, and holds the project lock while it starts the loop.
 * Not a machine: `ps` does not list it; `down` (and `down --force`, by its mark) stops it.
 */

export const RENEWAL_SERVICE = 'acme-renewal';
/** Twice a day, as certbot's timer and Caddy's check: a failed attempt is retried within hours, long before expiry. */
export const RENEWAL_INTERVAL_S = 12 * 3600;

/** The loop, as a shell command: the CLI that runs now (its node, its script) is the one that renews. */
export function renewalLoop(projectDir: string, node = process.execPath, script = realpathSync(process.argv[1]!), intervalS = RENEWAL_INTERVAL_S): string {
  const quote = (word: string): string => `'${word.replaceAll("'", `'\\''`)}'`;
  return `while :; do sleep ${intervalS}; ${quote(node)} ${quote(script)} -C ${quote(projectDir)} cert renew --scheduled; done`;
}

/** Starts the loop under s6 when the fleet wants it (mode acme, restart on-failure) and it is not running; stops it when it does not. */
export async function reconcileRenewalService(plan: FleetPlan, timeoutMs: number): Promise<void> {
  const dir = serviceDir(stateDir(plan.projectDir), RENEWAL_SERVICE);
  const wanted = plan.config.proxy.tls.mode === 'acme' && plan.config.restart === 'on-failure';
  if (!wanted) {
    if (existsSync(dir)) await stopRenewalService(plan.projectDir, timeoutMs);
    return;
  }
  const service = { dir, command: { file: 'sh', args: ['-c', renewalLoop(plan.projectDir)] }, cwd: plan.projectDir, env: {}, policy: 'on-failure' as const };
  writeService(service);
  if ((await serviceStatus(dir))?.up) return;
  spawnMachine({ file: 's6-supervise', args: [dir] }, { log: join(stateDir(plan.projectDir), 'logs', `${RENEWAL_SERVICE}.log`), cwd: dir, mark: machineMark(plan.projectDir, RENEWAL_SERVICE) });
}

export async function stopRenewalService(projectDir: string, timeoutMs: number): Promise<void> {
  const dir = serviceDir(stateDir(projectDir), RENEWAL_SERVICE);
  await releaseService(dir);
  await stopMarked([machineMark(projectDir, RENEWAL_SERVICE)], timeoutMs);
  removeService(dir);
}
