import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FleetPlan } from '../fleet/plan.js';
import { proxyAddresses } from '../fleet/vm-plan.js';
import { readIfExists, tlsPaths, writeFileAtomic } from '../files.js';
import { UserError } from '../errors.js';
import { listCertificates, putCertificate, type AdminEndpoint } from '../stats/client.js';
import { certificateFacts, ensureCa, issueProxyCertificate } from './local-ca.js';
import { certificateChain, privateKey } from './pem.js';
import { proxyCertificateNames, renewalReason } from './renewal.js';

/**
 * The proxy's certificate on `up`: the file the proxy starts with (`.uproxy/tls/proxy.pem`,
 * chain + key, mode 0600) is brought up to date first, then a running proxy that serves
 * another certificate is handed this one through its admin API, so renewal never restarts it.
 *
 * Where the key may travel decides the rest. A host proxy's admin API is on loopback: a
 * renewal brings a new key and sends it along. A VM guest's admin API is on the bridge the
 * other guests share, so its key arrives only in its boot image: a renewal keeps the key and
 * sends the chain alone, and a new key (your own files changed) restarts the proxy machine.
 */

/** Whether the admin API may carry the proxy's key, as `Runtime.keyOverAdminApi` says. */
export interface KeyPolicy {
  keyOverAdminApi: boolean;
}

export interface ProxyCertificate {
  file: string;
  /** Why the file was written by this `up`, or null when it was already current. */
  renewed: string | null;
}

/** Writes the proxy's PEM file when it is missing or due (local-ca), or when your own files changed (files). */
export async function prepareProxyCertificate(plan: FleetPlan, policy: KeyPolicy): Promise<ProxyCertificate | null> {
  const { projectDir, config } = plan;
  const { tls } = config.proxy;
  if (tls.mode === 'off') return null;
  const paths = tlsPaths(projectDir);
  const current = readIfExists(paths.proxy);
  if (tls.mode === 'files') {
    const pem = ownPem(plan);
    if (pem === current) return { file: paths.proxy, renewed: null };
    writeFileAtomic(paths.proxy, pem, 0o600);
    return { file: paths.proxy, renewed: filesReason(current) };
  }
  // acme: the proxy starts with the project CA's certificate for the domains until the CA's
  // arrives (it must serve TLS, and answer tls-alpn-01, before it has one); later ones stay.
  if (tls.mode === 'acme' && current !== null && !bootstrapDue(plan, current)) return { file: paths.proxy, renewed: null };
  const { ca } = await ensureCa(projectDir, config.name);
  const names = certificateNames(plan);
  const reason = localCaReason(plan, current, names);
  if (reason === null) return { file: paths.proxy, renewed: null };
  const key = policy.keyOverAdminApi || current === null ? undefined : privateKey(current) ?? undefined;
  writeFileAtomic(paths.proxy, await issueProxyCertificate(ca, names, { key }), 0o600);
  return { file: paths.proxy, renewed: reason };
}

/** Why `prepareProxyCertificate` would write the proxy's PEM file, or null; writes nothing (`up --dry-run`). */
export function proxyCertificateChange(plan: FleetPlan): string | null {
  const { tls } = plan.config.proxy;
  if (tls.mode === 'off') return null;
  const paths = tlsPaths(plan.projectDir);
  const current = readIfExists(paths.proxy);
  if (tls.mode === 'files') return ownPem(plan) === current ? null : filesReason(current);
  if (tls.mode === 'acme' && current !== null && !bootstrapDue(plan, current)) return null;
  return existsSync(paths.caCert) ? localCaReason(plan, current, certificateNames(plan)) : 'there is no project CA yet';
}

/** With acme, whether proxy.pem is still the project CA's temporary certificate and that one is due; one from the ACME CA is acme.ts's to renew. */
function bootstrapDue(plan: FleetPlan, current: string): boolean {
  const caCert = tlsPaths(plan.projectDir).caCert;
  const facts = existsSync(caCert) ? certificateFacts(current, readFileSync(caCert, 'utf8')) : null;
  return facts === null || (facts.signedByCa && renewalReason(facts, certificateNames(plan), Date.now()) !== null);
}

function ownPem({ projectDir, config: { proxy } }: FleetPlan): string {
  return `${readOwn(projectDir, 'certFile', proxy.tls.certFile!).trimEnd()}\n${readOwn(projectDir, 'keyFile', proxy.tls.keyFile!).trimEnd()}\n`;
}

function filesReason(current: string | null): string {
  return current === null ? 'the proxy had no certificate yet' : 'proxy.tls.certFile or keyFile changed';
}

function certificateNames(plan: FleetPlan): string[] {
  const { tls } = plan.config.proxy;
  return proxyCertificateNames(tls.mode === 'acme' ? tls.acme!.domains : tls.names, proxyAddresses(plan));
}

function localCaReason(plan: FleetPlan, current: string | null, names: readonly string[]): string | null {
  const facts = current === null ? null : certificateFacts(current, readFileSync(tlsPaths(plan.projectDir).caCert, 'utf8'));
  return renewalReason(facts, names, Date.now());
}

/**
 * Hands the running proxy the certificate in `file` (PUT /tls/certificates/0) unless it serves
 * that one already, told by its serial (by its expiry from a proxy that does not list serials).
 * Returns whether it was replaced. A proxy that just started read the file itself, so it is
 * left alone. Without `keyOverAdminApi` only the chain is sent: the
 * proxy pairs it with the key it has.
 */
export async function syncProxyCertificate(endpoint: AdminEndpoint, file: string, policy: KeyPolicy): Promise<boolean> {
  const pem = readFileSync(file, 'utf8');
  const facts = certificateFacts(pem);
  if (facts === null) throw new UserError(`${file} holds no readable certificate: delete it and run \`uproxy up\` again`);
  const served = (await listCertificates(endpoint))[0];
  const same = served?.serial === undefined ? served?.not_after === Math.floor(facts.notAfter / 1000) : served.serial === facts.serial;
  if (same) return false;
  await putCertificate(endpoint, 0, policy.keyOverAdminApi ? pem : certificateChain(pem));
  return true;
}

function readOwn(projectDir: string, key: 'certFile' | 'keyFile', path: string): string {
  const file = resolve(projectDir, path);
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read proxy.tls.${key} ${file}: ${(error as Error).message}`);
  }
}
