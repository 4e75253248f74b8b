import { resolve } from 'node:path';
import { saveBackendsCount } from '../config/edit.js';
import { loadConfig } from '../config/load.js';
import type { RuntimeName } from '../config/schema.js';
import { toShell } from '../fleet/argv.js';
import type { AccelChoice } from '../fleet/qemu-command.js';
import { ownBackendProblem, plainHttpProblem, planFleet, publishHttpProblem, type FleetPlan } from '../fleet/plan.js';
import { readState, withLock, type FleetState } from '../fleet/state.js';
import type { Progress } from '../progress.js';
import { describeChanges } from '../runtimes/machines.js';
import { loadRuntime, type Runtime, type RuntimeContext } from '../runtimes/runtime.js';
import { UserError } from '../errors.js';
import { runtimeContext } from './context.js';
import type { MachineRow } from './output.js';
import { withHealth } from './ps.js';

export interface UpRequest {
  dir: string;
  backends?: number;
  runtime?: RuntimeName;
  timeoutMs?: number;
  dryRun: boolean;
  /** `--accel`, for the qemu runtime. */
  accel?: AccelChoice;
}

export type UpResult =
  /** `lines`: what `up` would change in the running fleet, or every command of a cold start. */
  | { kind: 'dry-run'; lines: string[]; notes: string[] }
  | { kind: 'up'; state: FleetState; machines: MachineRow[]; notes: string[]; savedBackendsCount?: number; certificateExpiry?: number; certificateIssuer?: string };

/** Builds and starts (or reconciles) the fleet the project describes. */
export async function up(request: UpRequest, progress: Progress): Promise<UpResult> {
  const projectDir = resolve(request.dir);
  const config = loadConfig(projectDir);
  const plan = planFleet(config, projectDir, { backends: request.backends, runtime: request.runtime });
  const refused = plainHttpProblem(plan) ?? ownBackendProblem(plan) ?? publishHttpProblem(plan);
  if (refused) throw new UserError(refused);
  const runtime = await loadRuntime(plan.runtime);
  const ctx = runtimeContext(projectDir, progress);
  const notes = request.accel !== undefined && plan.runtime !== 'qemu' ? [`--accel is only used by the qemu runtime; the ${plan.runtime} runtime ignores it`] : [];

  if (request.dryRun) return { kind: 'dry-run', lines: await dryRun(plan, runtime, ctx, request, notes), notes };
  return withLock(projectDir, 'up', async () => {
    const previous = readState(projectDir);
    requireSameRuntime(previous, plan);
    await runtime.preflight(plan, previous, ctx);
    // Loaded only for HTTPS fleets: the X.509 library is the largest part of the CLI.
    const tls = config.proxy.tls.mode === 'off' ? null : await import('../tls/proxy-cert.js');
    // The file first, so a proxy that `up` starts reads the current certificate itself.
    const certificate = tls && (await progress.step('check the proxy certificate', () => tls.prepareProxyCertificate(plan, runtime)));
    if (certificate?.renewed) notes.push(`new proxy certificate in .uproxy/tls/proxy.pem: ${certificate.renewed}`);
    await runtime.build(plan, ctx);
    const state = await runtime.up(plan, previous, ctx, { timeoutMs: request.timeoutMs, accel: request.accel });
    if (tls && certificate) {
      const { adminEndpointOf } = await import('../stats/client.js');
      const endpoint = adminEndpointOf(state, ctx.adminToken());
      // A proxy that kept running still serves the old one: replaced through the admin API, no restart.
      const replaced = await progress.step('give the running proxy its current certificate', () => tls.syncProxyCertificate(endpoint, certificate.file, runtime));
      if (replaced) notes.push('the running proxy now serves the new certificate (no restart)');
      if (config.proxy.tls.mode === 'acme') {
        // Only now: the CA's challenges are answered by the running proxy.
        const { acmeOnUp } = await import('./cert.js');
        notes.push(...(await progress.step('check the certificate from the ACME CA', () => acmeOnUp(plan, endpoint, runtime))));
      }
    }
    // `--backends N` is the new size of the fleet, not a one-off: a later plain `up` keeps it.
    const saved = request.backends !== undefined && saveBackendsCount(projectDir, request.backends);
    const { machines, certificateExpiry, certificateIssuer } = await withHealth(projectDir, state, await runtime.inspect(state, ctx));
    return {
      kind: 'up',
      state,
      machines,
      notes,
      ...(saved ? { savedBackendsCount: request.backends } : {}),
      ...(certificateExpiry === undefined ? {} : { certificateExpiry }),
      ...(certificateIssuer === undefined ? {} : { certificateIssuer }),
    };
  });
}

/**
 * `up --dry-run`: on a running fleet (a state file), the changes `up` would make, decided by the
 * same `planChanges`; otherwise every command of a cold start. Reads only: no lock, no build,
 * no start, no admin API call.
 */
async function dryRun(plan: FleetPlan, runtime: Runtime, ctx: RuntimeContext, request: UpRequest, notes: string[]): Promise<string[]> {
  const previous = readState(ctx.projectDir);
  requireSameRuntime(previous, plan);
  if (previous && runtime.preview) {
    const preview = await runtime.preview(plan, previous, ctx, { accel: request.accel });
    // Loaded only for HTTPS fleets, as `up` does: the X.509 library is the largest part of the CLI.
    const certificate = plan.config.proxy.tls.mode === 'off' ? null : (await import('../tls/proxy-cert.js')).proxyCertificateChange(plan);
    const renewal = certificate === null ? [] : [`renew the proxy certificate in .uproxy/tls/proxy.pem (${certificate}); a proxy that keeps running gets it through its admin API (PUT /tls/certificates/0)`];
    const acme = plan.config.proxy.tls.mode === 'acme' ? (await import('../tls/acme.js')).acmeDue(plan) : null;
    if (acme !== null) renewal.push(`ask ${plan.config.proxy.tls.acme!.directoryUrl} for a certificate (${acme}), answering its ${plan.config.proxy.tls.acme!.challenge} challenges through the proxy's admin API`);
    return describeChanges(previous.machines, preview.wanted, preview.running, [...renewal, ...preview.steps]);
  }
  if (previous) notes.push(`the ${plan.runtime} runtime's dry run does not compare with the running fleet yet: these are the commands of a cold start`);
  return (await runtime.describe(plan, previous, ctx)).map(toShell);
}

function requireSameRuntime(previous: FleetState | null, plan: FleetPlan): void {
  if (previous && previous.runtime !== plan.runtime) {
    throw new UserError(`this fleet is running on the ${previous.runtime} runtime; run \`uproxy down\` before starting it on ${plan.runtime}`);
  }
}
