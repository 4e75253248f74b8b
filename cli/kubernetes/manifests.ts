/**
 * A fleet plan as Kubernetes objects, as plain data: what `uproxy export kubernetes` writes.
 * The proxy's command line comes from proxyArgs and the backends' from backendArgs, the same
 * renderers `up` uses, with the listeners a pod has; nothing here reads a file or the clock,
 * so every object is testable directly (and validated by validate.ts before it is written).
 *
 * The shape: one proxy pod that starts with no backend; the backends' pods behind a headless
 * Service; and a sync controller (`uproxy sync --kubernetes`) that watches that Service's
 * EndpointSlices and adds and removes backends through the proxy's admin API, which a
 * NetworkPolicy lets only the controller reach. Only the controller holds the admin token.
 */
import { createHash } from 'node:crypto';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { machinePorts, type UproxyConfig } from '../config/schema.js';
import { UserError } from '../errors.js';
import { renderOptions } from '../fleet/argv.js';
import { backendArgs, instanceName, proxyArgs, type FleetPlan, type Role } from '../fleet/plan.js';
import { imageKind } from '../oci/app-image.js';
import { imageName } from '../oci/layout.js';
import { certificateChain } from '../tls/pem.js';
import type { KubernetesOptions } from './options.js';

/** How long a deleted backend pod keeps serving before its SIGTERM, for the proxy to drain it. */
const BACKEND_DRAIN_S = 15;

export type KubernetesObject = IDeployment | IService | ISecret | IServiceAccount | INetworkPolicy | IRole | IRoleBinding;

/** One YAML file of the export: a concern's objects. */
export interface ManifestFile {
  name: string;
  /** What secret it holds (it is then written mode 0600 and git-ignored), or null. */
  secret: string | null;
  objects: KubernetesObject[];
}

/** What the rendering needs that only the project's files hold (read by core/export.ts). */
export interface KubernetesInputs {
  /** Each app image's manifest digest (`sha256:…`) from its OCI layout, or null when `uproxy build --oci` made none. */
  digests: Record<Role, string | null>;
  /** The proxy's PEM file (chain, then key) when proxy.tls.mode is not off. */
  certificate: string | null;
  /** The admin API's bearer token, for the sync controller alone. */
  adminToken: string;
  /** uproxy's own version: the sync controller's image tag. */
  version: string;
}

/** Every object's name, from the plan's names (`<fleet>-proxy` is the proxy machine's instanceName, as on the VM runtimes). */
export interface KubernetesNames {
  /** The proxy's Deployment, its client Service and its NetworkPolicy. */
  proxy: string;
  proxyAdmin: string;
  proxyTls: string;
  /** The backends' Deployment, their headless Service (whose EndpointSlices the sync controller watches) and NetworkPolicy. */
  backend: string;
  /** The sync controller's ServiceAccount, Role, RoleBinding and Deployment. */
  sync: string;
  syncAdminToken: string;
}

export const SYNC = 'sync';

export function kubernetesNames(plan: FleetPlan): KubernetesNames {
  const proxy = instanceName(plan.fleet, plan.proxy.name);
  const sync = instanceName(plan.fleet, SYNC);
  return {
    proxy,
    proxyAdmin: `${proxy}-admin`,
    proxyTls: `${proxy}-tls`,
    backend: instanceName(plan.fleet, 'backend'),
    sync,
    syncAdminToken: `${sync}-admin-token`,
  };
}

/** Where the proxy's certificate Secret is mounted, and the file `--tls-cert` names. */
export const CERTIFICATE_DIR = '/etc/uproxy/tls';
export const CERTIFICATE_FILE = 'proxy.pem';
/** Where the sync controller's admin-token Secret is mounted, and the file it reads. */
export const ADMIN_TOKEN_DIR = '/var/run/uproxy';
export const ADMIN_TOKEN_FILE = 'admin-token';
export const SYNC_HEALTH_PORT = 8090;
export const UNIKERNEL_RUNTIME_CLASS = 'urunc';

/** The sync controller's image: one per uproxy release, shared by every fleet. */
export function syncImage(registry: string, version: string): string {
  return `${registry}/uproxy-sync:${version}`;
}

/** An app's image where `uproxy push` puts it, pinned by its manifest digest when its OCI layout exists. */
export function appImage(registry: string, plan: FleetPlan, role: Role, digest: string | null): string {
  const name = `${registry}/${imageName(plan.fleet, role)}`;
  return digest === null ? `${name}:latest` : `${name}@${digest}`;
}

/** The runtimeClassName the app pods need: urunc for Unikraft kernels (what `build --oci` packs for this runtime), none for static binaries. */
export function appRuntimeClass(plan: FleetPlan): string | null {
  return imageKind(plan) === 'unikraft' ? UNIKERNEL_RUNTIME_CLASS : null;
}

/** The names clients in the cluster reach the proxy by, which its certificate from the project CA covers. */
export function proxyServiceHostnames(plan: FleetPlan, namespace: string): string[] {
  const service = kubernetesNames(plan).proxy;
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/** The `uproxy sync` command line the controller's image (entrypoint `uproxy`) runs. */
export function syncArgs(plan: FleetPlan, namespace: string): string[] {
  const names = kubernetesNames(plan);
  return [
    SYNC,
    ...renderOptions(
      {
        kubernetes: true,
        namespace,
        service: names.backend,
        'admin-url': `http://${names.proxyAdmin}:${machinePorts(plan.config).admin}`,
        'admin-token-file': `${ADMIN_TOKEN_DIR}/${ADMIN_TOKEN_FILE}`,
        'health-listen': `0.0.0.0:${SYNC_HEALTH_PORT}`,
      },
      '--',
    ),
  ];
}

export function renderKubernetesManifests(plan: FleetPlan, options: KubernetesOptions, inputs: KubernetesInputs): ManifestFile[] {
  const { config } = plan;
  const { namespace, registry } = options;
  // A label value must end with a letter or digit; a fleet name may end with "-".
  if (!/[a-z0-9]$/.test(plan.fleet)) {
    throw new UserError(`name "${plan.fleet}" in uproxy.json ends with "-", which a Kubernetes label cannot: rename the fleet to end with a letter or digit`);
  }
  const names = kubernetesNames(plan);
  const ports = machinePorts(config);
  const meta = metadataFor(plan, namespace);
  const proxyLabels = selector(plan, plan.proxy.name);
  const backendLabels = selector(plan, 'backend');
  const syncLabels = selector(plan, SYNC);
  const runtimeClass = appRuntimeClass(plan);
  // Pods that talk to no API server get no token to lose, and no Service environment variables
  // (a unikernel would carry them on its kernel command line).
  const appPod = { automountServiceAccountToken: false, enableServiceLinks: false, ...(runtimeClass === null ? {} : { runtimeClassName: runtimeClass }) };
  // A Secret file readable by the group the pod runs with, whatever user the image runs as.
  const secretReader = { fsGroup: 65532 };
  const secretMode = 0o440;

  const listeners = { listen: `0.0.0.0:${ports.proxy}`, admin: `0.0.0.0:${ports.admin}`, backendNetwork: options.podNetwork };
  const certificate = inputs.certificate;
  const proxyDeployment: IDeployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(names.proxy, plan.proxy.name),
    spec: {
      replicas: 1,
      // Never two proxies at once: the admin Service would hand the sync controller's changes
      // to either of them, and the new one would miss some backends.
      strategy: { type: 'Recreate' },
      selector: { matchLabels: proxyLabels },
      template: {
        metadata: {
          labels: labels(plan, plan.proxy.name),
          // The proxy reads its certificate once, at start: a new one in the Secret must restart it.
          ...(certificate === null ? {} : { annotations: { 'uproxy/certificate-sha256': sha256(certificateChain(certificate)) } }),
        },
        spec: {
          ...appPod,
          ...(certificate === null ? {} : { securityContext: secretReader }),
          // Time for the proxy's own drain (proxy.timeouts.shutdownMs) before the kubelet kills it.
          terminationGracePeriodSeconds: Math.ceil(config.proxy.timeouts.shutdownMs / 1000) + 5,
          containers: [
            {
              name: plan.proxy.name,
              image: appImage(registry, plan, 'proxy', inputs.digests.proxy),
              // No backend on the command line: the sync controller adds the ready pods through the admin API.
              args: proxyArgs(config, listeners, [], certificate === null ? null : `${CERTIFICATE_DIR}/${CERTIFICATE_FILE}`),
              ports: [
                { name: 'client', containerPort: ports.proxy, protocol: 'TCP' },
                { name: 'admin', containerPort: ports.admin, protocol: 'TCP' },
              ],
              readinessProbe: healthz('admin', 5, 2),
              livenessProbe: healthz('admin', 10, 3),
              ...(certificate === null ? {} : { volumeMounts: [{ name: 'tls', mountPath: CERTIFICATE_DIR, readOnly: true }] }),
            },
          ],
          ...(certificate === null ? {} : { volumes: [{ name: 'tls', secret: { secretName: names.proxyTls, defaultMode: secretMode } }] }),
        },
      },
    },
  };

  const proxyService: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(names.proxy, plan.proxy.name),
    spec: {
      type: options.serviceType,
      selector: proxyLabels,
      ports: [{ name: 'client', port: servicePort(config, ports.proxy), targetPort: 'client', protocol: 'TCP' }],
    },
  };
  const adminService: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(names.proxyAdmin, plan.proxy.name),
    spec: { type: 'ClusterIP', selector: proxyLabels, ports: [{ name: 'admin', port: ports.admin, targetPort: 'admin', protocol: 'TCP' }] },
  };
  const proxyPolicy: INetworkPolicy = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta(names.proxy, plan.proxy.name),
    spec: {
      podSelector: { matchLabels: proxyLabels },
      policyTypes: ['Ingress'],
      ingress: [
        { ports: [{ port: ports.proxy, protocol: 'TCP' }] },
        { from: [{ podSelector: { matchLabels: syncLabels } }], ports: [{ port: ports.admin, protocol: 'TCP' }] },
      ],
    },
  };

  const health = config.backends.health;
  const backendDeployment: IDeployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(names.backend, 'backend'),
    spec: {
      replicas: plan.backends.length,
      selector: { matchLabels: backendLabels },
      template: {
        metadata: { labels: labels(plan, 'backend') },
        spec: {
          ...appPod,
          terminationGracePeriodSeconds: BACKEND_DRAIN_S + 10,
          containers: [
            {
              name: 'backend',
              image: appImage(registry, plan, 'backend', inputs.digests.backend),
              // The kubelet puts the pod's name in for $(POD_NAME): each backend names itself in its pages.
              args: backendArgs('$(POD_NAME)', `0.0.0.0:${ports.backend}`),
              env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
              ports: [{ name: 'http', containerPort: ports.backend, protocol: 'TCP' }],
              // Ready as the proxy would find it up: the same path, interval and thresholds.
              readinessProbe: {
                httpGet: { path: health.path, port: 'http' },
                periodSeconds: wholeSeconds(health.intervalMs),
                timeoutSeconds: wholeSeconds(health.timeoutMs),
                failureThreshold: health.fall,
                successThreshold: health.rise,
              },
              // Kubernetes signals a deleted pod while the sync controller is still draining it:
              // the pause keeps it serving what the proxy sent it meanwhile (kubelet's own sleep,
              // Kubernetes 1.30+: the image has no shell).
              lifecycle: { preStop: { sleep: { seconds: BACKEND_DRAIN_S } } },
            },
          ],
        },
      },
    },
  };
  const backendService: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(names.backend, 'backend'),
    spec: { clusterIP: 'None', selector: backendLabels, ports: [{ name: 'http', port: ports.backend, targetPort: 'http', protocol: 'TCP' }] },
  };
  // Backends answer without a token: only the proxy, which checks it, may reach them.
  const backendPolicy: INetworkPolicy = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta(names.backend, 'backend'),
    spec: {
      podSelector: { matchLabels: backendLabels },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: proxyLabels } }], ports: [{ port: ports.backend, protocol: 'TCP' }] }],
    },
  };

  const serviceAccount: IServiceAccount = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(names.sync, SYNC) };
  const role: IRole = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: meta(names.sync, SYNC),
    rules: [{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] }],
  };
  const roleBinding: IRoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta(names.sync, SYNC),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: names.sync },
    subjects: [{ kind: 'ServiceAccount', name: names.sync, namespace }],
  };
  const syncDeployment: IDeployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(names.sync, SYNC),
    spec: {
      replicas: 1,
      selector: { matchLabels: syncLabels },
      template: {
        metadata: {
          labels: labels(plan, SYNC),
          // Its token file is read at start: a new admin token (`uproxy init --tokens-only`) must restart it, as it restarts the proxy.
          annotations: { 'uproxy/admin-token-sha256': config.proxy.adminTokenSha256 },
        },
        spec: {
          serviceAccountName: names.sync,
          enableServiceLinks: false,
          securityContext: secretReader,
          containers: [
            {
              name: SYNC,
              image: syncImage(registry, inputs.version),
              args: syncArgs(plan, namespace),
              ports: [{ name: 'health', containerPort: SYNC_HEALTH_PORT, protocol: 'TCP' }],
              readinessProbe: healthz('health', 5, 2),
              livenessProbe: healthz('health', 10, 3),
              volumeMounts: [{ name: 'admin-token', mountPath: ADMIN_TOKEN_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: 'admin-token', secret: { secretName: names.syncAdminToken, defaultMode: secretMode } }],
        },
      },
    },
  };
  const adminTokenSecret: ISecret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(names.syncAdminToken, SYNC),
    type: 'Opaque',
    data: { [ADMIN_TOKEN_FILE]: base64(inputs.adminToken) },
  };

  const tlsSecret: ISecret | null = certificate === null ? null : {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(names.proxyTls, plan.proxy.name),
    type: 'Opaque',
    data: { [CERTIFICATE_FILE]: base64(certificate) },
  };

  return [
    { name: 'proxy.yaml', secret: null, objects: [proxyDeployment, proxyService, adminService, proxyPolicy] },
    ...(tlsSecret === null ? [] : [{ name: 'proxy-secret.yaml', secret: "the proxy's certificate and private key", objects: [tlsSecret] }]),
    { name: 'backend.yaml', secret: null, objects: [backendDeployment, backendService, backendPolicy] },
    { name: 'sync.yaml', secret: null, objects: [serviceAccount, role, roleBinding, syncDeployment] },
    { name: 'sync-secret.yaml', secret: 'the admin token, mounted only into the sync controller', objects: [adminTokenSecret] },
  ];
}

function labels(plan: FleetPlan, component: string): Record<string, string> {
  return { ...selector(plan, component), 'app.kubernetes.io/managed-by': 'uproxy' };
}

/** What tells one fleet's pods of one kind from every other pod in the namespace. */
function selector(plan: FleetPlan, component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': component, 'app.kubernetes.io/part-of': plan.fleet };
}

function metadataFor(plan: FleetPlan, namespace: string): (name: string, component: string) => { name: string; namespace: string; labels: Record<string, string> } {
  return (name, component) => ({ name, namespace, labels: labels(plan, component) });
}

function healthz(port: string, periodSeconds: number, failureThreshold: number): IProbe {
  return { httpGet: { path: '/healthz', port }, periodSeconds, failureThreshold };
}

/** Where clients reach the proxy: proxy.publish's port when set (as on the other runtimes), else its own. */
function servicePort(config: UproxyConfig, proxyPort: number): number {
  const { publish } = config.proxy;
  if (publish === undefined) return proxyPort;
  const port = Number(publish.slice(publish.lastIndexOf(':') + 1));
  if (port < 1 || port > 65535) throw new UserError(`proxy.publish "${publish}": the port must be 1-65535`);
  return port;
}

/** A probe's seconds, which Kubernetes counts whole and from 1. */
function wholeSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}
