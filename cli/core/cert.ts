import { resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { readToken } from '../config/tokens.js';
import { UserError } from '../errors.js';
import { readIfExists, tlsPaths } from '../files.js';
import { planFleet, type FleetPlan } from '../fleet/plan.js';
import { readState, withLock, type FleetState } from '../fleet/state.js';
import { adminEndpointOf, listCertificates, type AdminEndpoint } from '../stats/client.js';
import { loadRuntime, type Runtime } from '../runtimes/runtime.js';
import { acmeDue, readAcmeState, renewAcmeCertificate, type AcmeOutcome, type AcmeState } from '../tls/acme.js';
import { certificateFacts } from '../tls/local-ca.js';
import { prepareProxyCertificate, syncProxyCertificate } from '../tls/proxy-cert.js';
import { acmeBackoffUntil } from '../tls/renewal.js';

/**
 * `uproxy cert status|renew`, and `up`'s ACME step: the proxy's certificate as its file and the
 * running proxy have it, and getting a new one, from the ACME CA in mode acme, from the
 * project CA in mode local-ca.
 */

export interface CertificateView {
  issuer: string;
  names: string[];
  serial: string;
  notBefore: string;
  notAfter: string;
}

export interface CertStatus {
  mode: 'off' | 'local-ca' | 'files' | 'acme';
  /** `.uproxy/tls/proxy.pem`, what the proxy starts with; null: none yet. */
  file: { path: string; certificate: CertificateView | null } | null;
  /** What the running proxy serves, or null without a fleet. */
  served: { issuer: string | null; names: string[]; serial: string | null; notAfter: string } | null;
  servedProblem?: string;
  acme?: {
    directoryUrl: string;
    domains: string[];
    challenge: string;
    /** Why `up`/`cert renew` would ask the CA now, or null while the certificate is good. */
    due: string | null;
    issued?: AcmeState['issued'];
    failure?: AcmeState['failure'] & { backoffUntil: string };
  };
}

export async function certStatus(dir: string): Promise<CertStatus> {
  const projectDir = resolve(dir);
  const config = loadConfig(projectDir);
  const { tls } = config.proxy;
  const path = tlsPaths(projectDir).proxy;
  const pem = tls.mode === 'off' ? null : readIfExists(path);
  const status: CertStatus = { mode: tls.mode, file: pem === null ? null : { path, certificate: view(pem) }, served: null };
  const state = readState(projectDir);
  if (state) {
    try {
      const first = (await listCertificates(endpointOf(projectDir, state), 2000))[0];
      status.served = first ? { issuer: first.issuer ?? null, names: first.names, serial: first.serial ?? null, notAfter: new Date(first.not_after * 1000).toISOString() } : null;
    } catch (error) {
      status.servedProblem = (error as Error).message;
    }
  }
  if (tls.mode === 'acme') {
    const settings = tls.acme!;
    const acme = readAcmeState(projectDir);
    status.acme = {
      directoryUrl: settings.directoryUrl,
      domains: settings.domains,
      challenge: settings.challenge,
      due: acmeDue(planFleet(config, projectDir)),
      ...(acme.issued ? { issued: acme.issued } : {}),
      ...(acme.failure ? { failure: { ...acme.failure, backoffUntil: new Date(acmeBackoffUntil(acme.failure)).toISOString() } } : {}),
    };
  }
  return status;
}

export type RenewResult =
  | { mode: 'acme'; outcome: AcmeOutcome }
  | { mode: 'local-ca'; renewed: string | null; replaced: boolean };

/** Asks for a new certificate for the running fleet (one is needed to answer the CA's challenges) and hands it to the proxy. */
export async function certRenew(dir: string, options: { force: boolean; scheduled: boolean }): Promise<RenewResult> {
  const projectDir = resolve(dir);
  const config = loadConfig(projectDir);
  const { mode } = config.proxy.tls;
  if (mode === 'off' || mode === 'files') {
    throw new UserError(`proxy.tls.mode is "${mode}": ${mode === 'off' ? 'the proxy serves plain HTTP' : 'the certificate is your own (certFile, keyFile): replace the files and run `uproxy up`'}; \`uproxy cert renew\` renews certificates of modes acme and local-ca`);
  }
  if (options.force && mode !== 'acme') throw new UserError('--force asks an ACME CA again before the certificate is due; with mode local-ca, `uproxy cert renew` renews when a third of its life is left');
  return withLock(projectDir, 'cert renew', async () => {
    const state = readState(projectDir);
    if (!state) throw new UserError(`no fleet is running in ${projectDir}: \`uproxy up\` starts one and gets its certificate`);
    const plan = planFleet(config, projectDir, { backends: state.machines.filter((m) => m.role === 'backend').length, runtime: state.runtime });
    const runtime = await loadRuntime(state.runtime);
    const endpoint = endpointOf(projectDir, state);
    if (mode === 'acme') return { mode, outcome: await renewAcmeCertificate(plan, endpoint, runtime, { force: options.force, automatic: options.scheduled }) };
    const { renewed, replaced } = await renewLocal(plan, endpoint, runtime);
    return { mode, renewed, replaced };
  });
}

/**
 * `up`'s step for mode acme, once the proxy runs: a certificate from the CA when one is due.
 * A failed renewal is a note (the proxy keeps its certificate); a fleet that has none from the
 * CA yet is an error, as its clients get the temporary one, which browsers refuse.
 */
export async function acmeOnUp(plan: FleetPlan, endpoint: AdminEndpoint, runtime: Runtime): Promise<string[]> {
  const hadOne = readAcmeState(plan.projectDir).issued !== undefined;
  const temporary = 'the fleet is up, but its proxy serves a temporary certificate from the project CA, which browsers refuse';
  let outcome: AcmeOutcome;
  try {
    outcome = await renewAcmeCertificate(plan, endpoint, runtime, { force: false, automatic: true });
  } catch (error) {
    if (!(error instanceof UserError) || !hadOne) throw error instanceof UserError ? new UserError(`${temporary}: ${error.message}`, error.details) : error;
    return [`the certificate is due but renewing it failed; the proxy keeps serving the current one: ${error.message}`];
  }
  if (outcome.kind === 'current') return [];
  if (outcome.kind === 'issued') return [`new certificate from ${outcome.issuer} (${outcome.reason}), valid until ${new Date(outcome.notAfter).toISOString()}; the running proxy serves it (no restart)`];
  const until = new Date(outcome.until).toISOString();
  const last = `the last attempt failed at ${outcome.failure.at}: ${outcome.failure.message}; uproxy leaves the CA alone until ${until}, \`uproxy cert renew\` asks now`;
  if (!hadOne) throw new UserError(`${temporary}: ${last}`);
  return [`the certificate is due, but ${last}`];
}

async function renewLocal(plan: FleetPlan, endpoint: AdminEndpoint, runtime: Runtime): Promise<{ renewed: string | null; replaced: boolean }> {
  const prepared = await prepareProxyCertificate(plan, runtime);
  const replaced = prepared === null ? false : await syncProxyCertificate(endpoint, prepared.file, runtime);
  return { renewed: prepared?.renewed ?? null, replaced };
}

function endpointOf(projectDir: string, state: FleetState): AdminEndpoint {
  return adminEndpointOf(state, readToken(projectDir, 'admin'));
}

function view(pem: string): CertificateView | null {
  const facts = certificateFacts(pem);
  if (facts === null) return null;
  return { issuer: facts.issuer, names: [...facts.names], serial: facts.serial, notBefore: new Date(facts.notBefore).toISOString(), notAfter: new Date(facts.notAfter).toISOString() };
}
