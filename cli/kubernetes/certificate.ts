import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { readIfExists, tlsPaths, writeFileAtomic } from '../files.js';
import type { FleetPlan } from '../fleet/plan.js';
import { certificateFacts, ensureCa, issueProxyCertificate } from '../tls/local-ca.js';
import { prepareProxyCertificate } from '../tls/proxy-cert.js';
import { proxyCertificateNames, renewalReason } from '../tls/renewal.js';
import { proxyServiceHostnames } from './manifests.js';

/**
 * The certificate the proxy serves in Kubernetes, chain and key as one PEM (what its Secret holds).
 *
 * - local-ca: a certificate of its own from the project CA, `.uproxy/tls/kubernetes.pem` (0600),
 *   for the names clients use in the cluster (the proxy Service's DNS names in the namespace)
 *   besides localhost and proxy.tls.names; `up`'s proxy.pem names the host's or the bridge's
 *   addresses instead, which no pod has. It is kept while it is good, so exporting again writes
 *   the same Secret, and issued again by the renewal rule of `up` (30 days, renewed with a third left).
 * - files: your certificate and key, as `up` puts them together in proxy.pem.
 * - acme: proxy.pem as the ACME CA issued it to `up` or `uproxy cert renew`; nothing renews it in the cluster.
 */

export interface KubernetesCertificate {
  pem: string;
  /** Who issued it, for the summary. */
  source: string;
  /** local-ca: the CA certificate clients must trust. */
  caFile?: string;
  /** Its expiry, in ms since the epoch. */
  notAfter: number;
  /** Why this export issued it (local-ca), or null when it was kept or is not ours to issue. */
  issued: string | null;
}

export async function kubernetesCertificate(plan: FleetPlan, namespace: string): Promise<KubernetesCertificate | null> {
  const { tls } = plan.config.proxy;
  if (tls.mode === 'off') return null;
  if (tls.mode === 'local-ca') return projectCaCertificate(plan, namespace);
  const file = tlsPaths(plan.projectDir).proxy;
  if (tls.mode === 'files') {
    // Writes proxy.pem from your files when they changed; the key policy is local-ca's alone.
    await prepareProxyCertificate(plan, { keyOverAdminApi: true });
    return fromFile(file, readFileSync(file, 'utf8'), 'check that proxy.tls.certFile is a PEM certificate');
  }
  const pem = readIfExists(file);
  if (pem === null) {
    throw new UserError(`proxy.tls.mode is "acme" and there is no certificate from the ACME CA yet in ${file}: run \`uproxy up\` (or \`uproxy cert renew\`) to get one, then export again`);
  }
  return fromFile(file, pem, 'run `uproxy cert renew --force` to get a new one');
}

async function projectCaCertificate(plan: FleetPlan, namespace: string): Promise<KubernetesCertificate> {
  const { projectDir, config } = plan;
  const file = join(tlsPaths(projectDir).dir, 'kubernetes.pem');
  const { ca } = await ensureCa(projectDir, config.name);
  const names = proxyCertificateNames(config.proxy.tls.names, proxyServiceHostnames(plan, namespace));
  const current = readIfExists(file);
  const facts = current === null ? null : certificateFacts(current, readFileSync(tlsPaths(projectDir).caCert, 'utf8'));
  const reason = renewalReason(facts, names, Date.now());
  const pem = reason === null ? current! : await issueProxyCertificate(ca, names);
  if (reason !== null) writeFileAtomic(file, pem, 0o600);
  return { ...fromFile(file, pem, 'delete it and export again'), source: 'the project CA', caFile: tlsPaths(projectDir).caCert, issued: reason };
}

function fromFile(file: string, pem: string, fix: string): KubernetesCertificate {
  const facts = certificateFacts(pem);
  if (facts === null) throw new UserError(`${file} holds no certificate that can be read: ${fix}`);
  return { pem, source: facts.issuer, notAfter: facts.notAfter, issued: null };
}
