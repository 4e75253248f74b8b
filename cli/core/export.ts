import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { readToken, sha256Hex } from '../config/tokens.js';
import { UserError } from '../errors.js';
import { planFleet } from '../fleet/plan.js';
import { kubernetesCertificate, type KubernetesCertificate } from '../kubernetes/certificate.js';
import { appImage, appRuntimeClass, CERTIFICATE_DIR, CERTIFICATE_FILE, renderKubernetesManifests, syncImage } from '../kubernetes/manifests.js';
import type { KubernetesOptions } from '../kubernetes/options.js';
import { validateManifests } from '../kubernetes/validate.js';
import { writeManifests } from '../kubernetes/write.js';
import { readImageDigest } from '../oci/layout.js';
import { PACKAGE_ROOT } from '../templates.js';
import { certificateLine } from './output.js';

/**
 * `uproxy export kubernetes`: the fleet `up` would run, as Kubernetes objects in YAML files.
 * The project's files give what the plan does not hold (the admin token for the sync
 * controller, the images' digests, the proxy's certificate); every object is validated before
 * any file is written.
 */

export interface ExportOptions extends KubernetesOptions {
  /** Where the YAML goes; default `k8s/` in the project. */
  outDir?: string;
  /** Overwrite files in the way that an export did not write. */
  force: boolean;
}

export interface ExportResult {
  fleet: string;
  namespace: string;
  dir: string;
  files: { path: string; secret: string | null; objects: string[] }[];
  removed: string[];
  images: { image: string; pinned: boolean | null }[];
  /** The runtimeClassName the app pods need, if any. */
  runtimeClass: string | null;
  certificate: KubernetesCertificate | null;
}

const DEFAULT_OUT_DIR = 'k8s';

export async function exportKubernetes(projectDir: string, options: ExportOptions): Promise<ExportResult> {
  const config = loadConfig(projectDir);
  const plan = planFleet(config, projectDir);
  if (config.backends.command !== undefined || config.backends.env !== undefined) {
    throw new UserError(
      `backends.${config.backends.command === undefined ? 'env' : 'command'} in uproxy.json runs your app as a host process, but in Kubernetes each backend pod runs its image ` +
        'with the backend contract (--listen ADDR:PORT --name NAME): remove backends.command and backends.env to export',
    );
  }
  const adminToken = readToken(projectDir, 'admin');
  if (sha256Hex(adminToken) !== config.proxy.adminTokenSha256) {
    throw new UserError(
      `the admin token in .uproxy/admin-token is not the one proxy.adminTokenSha256 in uproxy.json names, so the sync controller would be refused: ` +
        'run `uproxy init --tokens-only` to make new tokens that match',
    );
  }
  const digests = { proxy: readImageDigest(projectDir, 'proxy'), backend: readImageDigest(projectDir, 'backend') };
  const certificate = await kubernetesCertificate(plan, options.namespace);
  const version = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

  const files = renderKubernetesManifests(plan, options, { digests, certificate: certificate?.pem ?? null, adminToken, version });
  validateManifests(files);
  const dir = options.outDir === undefined ? join(projectDir, DEFAULT_OUT_DIR) : resolve(options.outDir);
  const { written, removed } = writeManifests(dir, files, { force: options.force });
  return {
    fleet: plan.fleet,
    namespace: options.namespace,
    dir,
    files: files.map((file, i) => ({ path: written[i]!, secret: file.secret, objects: file.objects.map((o) => `${o.kind} ${o.metadata!.name!}`) })),
    removed,
    images: [
      ...(['proxy', 'backend'] as const).map((role) => ({ image: appImage(options.registry, plan, role, digests[role]), pinned: digests[role] !== null })),
      { image: syncImage(options.registry, version), pinned: null },
    ],
    runtimeClass: appRuntimeClass(plan),
    certificate,
  };
}

/** What `uproxy export kubernetes` prints: the files and their objects, the images, and how to apply them. */
export function exportText(result: ExportResult, now = Date.now()): string {
  const here = (path: string): string => relative(process.cwd(), path) || '.';
  const dir = here(result.dir);
  const width = Math.max(...result.files.map((f) => here(f.path).length));
  const lines = [`Wrote fleet "${result.fleet}" for Kubernetes namespace "${result.namespace}" to ${dir}/:`];
  for (const file of result.files) {
    lines.push(`  ${here(file.path).padEnd(width)}  ${file.objects.join(', ')}${file.secret === null ? '' : ` (mode 0600: ${file.secret})`}`);
  }
  lines.push(`The files holding secrets are git-ignored by ${dir}/.gitignore: keep them out of version control.`);
  for (const path of result.removed) lines.push(`Removed ${here(path)}, which an earlier export wrote and this one does not.`);
  lines.push('Images:', ...result.images.map(({ image }) => `  ${image}`));
  if (result.images.some(({ pinned }) => pinned === false)) {
    lines.push('  (:latest where no OCI layout was found in .uproxy/oci/: `uproxy build --oci` and `uproxy push`, then export again, pin them by digest)');
  }
  const { certificate } = result;
  if (result.runtimeClass !== null) {
    lines.push(`The proxy and backend images are unikernels: their pods run under runtimeClassName ${result.runtimeClass}, which the nodes must offer.`);
    // The kernel's only files come from its initrd (templates/proxy/Kraftfile); a volume is not one.
    if (certificate !== null) {
      lines.push(
        `  A Unikraft proxy reads files from its initrd alone: if its pod logs that it cannot open ${CERTIFICATE_DIR}/${CERTIFICATE_FILE}, ` +
          'serve plain HTTP (proxy.tls.mode "off") behind a load balancer that terminates TLS, or use microvm guests.',
      );
    }
  }
  if (certificate !== null) {
    lines.push(`${certificateLine(Math.floor(certificate.notAfter / 1000), now, certificate.source)}${certificate.issued === null ? '' : ` (issued now: ${certificate.issued})`}`);
    if (certificate.caFile !== undefined) lines.push(`  Clients trust ${here(certificate.caFile)}.`);
    lines.push('  Nothing renews it in the cluster: export again and apply before it expires (the proxy restarts with the new one).');
  }
  const create = result.namespace === 'default' ? '' : `kubectl create namespace ${result.namespace} (once), then `;
  lines.push(`Next: ${create}kubectl apply -f ${dir}/`);
  return `${lines.join('\n')}\n`;
}
