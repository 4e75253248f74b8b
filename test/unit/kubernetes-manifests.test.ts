import { createHash } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../cli/config/load.js';
import type { UproxyConfigInput } from '../../cli/config/schema.js';
import { planFleet } from '../../cli/fleet/plan.js';
import { renderKubernetesManifests, type KubernetesInputs, type KubernetesObject, type ManifestFile } from '../../cli/kubernetes/manifests.js';
import { cidrProblem, namespaceProblem, readRegistry, type KubernetesOptions } from '../../cli/kubernetes/options.js';
import { objectProblems, validateManifests } from '../../cli/kubernetes/validate.js';
import { manifestText, MARKER } from '../../cli/kubernetes/write.js';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const ADMIN_TOKEN = 'admin-token-plaintext-0123456789abcdef0123456';
const CLIENT_TOKEN = 'client-token-plaintext-0123456789abcdef012345';
const CERTIFICATE = '-----BEGIN CERTIFICATE-----\nMIIBcertificate\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIGHkey\n-----END PRIVATE KEY-----\n';
const PROXY_DIGEST = `sha256:${'a'.repeat(64)}`;
const BACKEND_DIGEST = `sha256:${'b'.repeat(64)}`;

/** uproxy.json as `init --runtime qemu` writes it, with `edit` applied. */
function config(edit: (c: UproxyConfigInput) => void = () => {}) {
  const input: UproxyConfigInput = {
    name: 'demo',
    runtime: 'qemu',
    proxy: { tokens: [{ name: 'default', sha256: sha256(CLIENT_TOKEN) }], adminTokenSha256: sha256(ADMIN_TOKEN), tls: { mode: 'local-ca' } },
    backends: { count: 3 },
  };
  edit(input);
  return parseConfig(JSON.stringify(input), 'uproxy.json');
}

const options: KubernetesOptions = { namespace: 'edge', registry: '127.0.0.1:5000/uproxy', serviceType: 'LoadBalancer', podNetwork: '10.0.0.0/8' };

function render(edit?: (c: UproxyConfigInput) => void, inputs: Partial<KubernetesInputs> = {}, opts: Partial<KubernetesOptions> = {}): ManifestFile[] {
  const c = config(edit);
  return renderKubernetesManifests(planFleet(c, '/srv/demo'), { ...options, ...opts }, {
    digests: { proxy: null, backend: null },
    certificate: c.proxy.tls.mode === 'off' ? null : CERTIFICATE,
    adminToken: ADMIN_TOKEN,
    version: '0.1.0',
    ...inputs,
  });
}

const objects = (files: ManifestFile[]): KubernetesObject[] => files.flatMap((f) => f.objects);
function find<K extends KubernetesObject['kind']>(files: ManifestFile[], kind: K, name: string): Extract<KubernetesObject, { kind: K }> {
  const found = objects(files).find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found as Extract<KubernetesObject, { kind: K }>;
}
const podSpec = (files: ManifestFile[], name: string) => find(files, 'Deployment', name).spec!.template.spec!;
const container = (files: ManifestFile[], name: string) => podSpec(files, name).containers[0]!;

const guests = {
  microvm: (c: UproxyConfigInput) => void (c.qemu = { guest: 'microvm' }),
  unikraft: (c: UproxyConfigInput) => void (c.qemu = { guest: 'unikraft' }),
  kraft: (c: UproxyConfigInput) => void (c.runtime = 'kraft'),
  host: (c: UproxyConfigInput) => void (c.runtime = 'host'),
  'tls off': (c: UproxyConfigInput) => void (c.proxy.tls = { mode: 'off' }),
};

describe('Kubernetes manifests', () => {
  it('renders objects that validate against the Kubernetes schema, for every kind of image', () => {
    for (const [what, edit] of Object.entries(guests)) {
      const files = render(edit);
      expect(() => validateManifests(files), what).not.toThrow();
      for (const object of objects(files)) expect(objectProblems(object), `${what}: ${object.kind} ${object.metadata?.name}`).toEqual([]);
    }
    expect(render().map((f) => [f.name, f.secret !== null, f.objects.map((o) => `${o.kind} ${o.metadata!.name}`)])).toEqual([
      ['proxy.yaml', false, ['Deployment demo-proxy', 'Service demo-proxy', 'Service demo-proxy-admin', 'NetworkPolicy demo-proxy']],
      ['proxy-secret.yaml', true, ['Secret demo-proxy-tls']],
      ['backend.yaml', false, ['Deployment demo-backend', 'Service demo-backend', 'NetworkPolicy demo-backend']],
      ['sync.yaml', false, ['ServiceAccount demo-sync', 'Role demo-sync', 'RoleBinding demo-sync', 'Deployment demo-sync']],
      ['sync-secret.yaml', true, ['Secret demo-sync-admin-token']],
    ]);
  });

  it('finds what the schema forbids, as a bug of the renderer', () => {
    const files = render();
    const deployment = structuredClone(find(files, 'Deployment', 'demo-proxy'));
    (deployment.spec as { replicas: unknown }).replicas = 'one';
    deployment.metadata!.name = 'Demo_Proxy';
    expect(objectProblems(deployment)).toEqual(['/spec/replicas must be integer', '/metadata/name "Demo_Proxy" is not a DNS-1123 label']);
    expect(() => validateManifests([{ name: 'proxy.yaml', secret: null, objects: [deployment] }])).toThrow(/^bug: .*\n  proxy\.yaml: Deployment Demo_Proxy: \/spec\/replicas must be integer/);
  });

  it('runs unikernel images under urunc, and every other image under the default runtime', () => {
    for (const [what, edit] of Object.entries(guests)) {
      const files = render(edit);
      const expected = what === 'unikraft' || what === 'kraft' ? 'urunc' : undefined;
      expect(podSpec(files, 'demo-proxy').runtimeClassName, what).toBe(expected);
      expect(podSpec(files, 'demo-backend').runtimeClassName, what).toBe(expected);
      expect(podSpec(files, 'demo-sync').runtimeClassName, what).toBeUndefined();
    }
  });

  it('starts the proxy on the pod network with no backend, token hashes only, and its certificate from the Secret', () => {
    const files = render();
    const args = container(files, 'demo-proxy').args!;
    expect(args.slice(0, 6)).toEqual(['--listen', '0.0.0.0:8080', '--admin', '0.0.0.0:8081', '--admin-token-sha256', sha256(ADMIN_TOKEN)]);
    expect(args).not.toContain('--backend');
    expect(args.join(' ')).toContain(`--token default:${sha256(CLIENT_TOKEN)}`);
    expect(args.join(' ')).toContain('--backend-network 10.0.0.0/8 --tls-cert /etc/uproxy/tls/proxy.pem');
    expect(render(undefined, {}, { podNetwork: '192.168.0.0/16' }).flatMap((f) => f.objects).some((o) => JSON.stringify(o).includes('--backend-network","192.168.0.0/16'))).toBe(true);
    const pod = podSpec(files, 'demo-proxy');
    expect(pod.volumes).toEqual([{ name: 'tls', secret: { secretName: 'demo-proxy-tls', defaultMode: 0o440 } }]);
    expect(find(files, 'Secret', 'demo-proxy-tls').data).toEqual({ 'proxy.pem': Buffer.from(CERTIFICATE).toString('base64') });
    expect(container(files, 'demo-proxy').readinessProbe?.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(find(files, 'Deployment', 'demo-proxy').spec!.replicas).toBe(1);

    const plain = render(guests['tls off']);
    expect(container(plain, 'demo-proxy').args).not.toContain('--tls-cert');
    expect(podSpec(plain, 'demo-proxy').volumes).toBeUndefined();
    expect(plain.map((f) => f.name)).not.toContain('proxy-secret.yaml');
  });

  it('gives the backends backends.count replicas, the backend contract with the pod name, and readiness on the health path', () => {
    const files = render((c) => void (c.backends = { count: 5, port: 9000, health: { path: '/ready', intervalMs: 2500, rise: 3 } }));
    expect(find(files, 'Deployment', 'demo-backend').spec!.replicas).toBe(5);
    const backend = container(files, 'demo-backend');
    expect(backend.args).toEqual(['--listen', '0.0.0.0:9000', '--name', '$(POD_NAME)']);
    expect(backend.env).toEqual([{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }]);
    expect(backend.readinessProbe).toEqual({ httpGet: { path: '/ready', port: 'http' }, periodSeconds: 3, timeoutSeconds: 1, failureThreshold: 2, successThreshold: 3 });
    // A deleted backend keeps serving while the sync controller drains it, inside its grace period.
    expect(backend.lifecycle).toEqual({ preStop: { sleep: { seconds: 15 } } });
    expect(find(files, 'Deployment', 'demo-backend').spec!.template.spec!.terminationGracePeriodSeconds).toBe(25);
    expect(find(files, 'Service', 'demo-backend').spec).toMatchObject({ clusterIP: 'None', ports: [{ port: 9000, targetPort: 'http' }] });
  });

  it('publishes the client port alone, as a LoadBalancer or a NodePort, and the admin port inside the cluster', () => {
    expect(find(render(), 'Service', 'demo-proxy').spec).toMatchObject({ type: 'LoadBalancer', ports: [{ name: 'client', port: 8080, targetPort: 'client' }] });
    expect(find(render(undefined, {}, { serviceType: 'NodePort' }), 'Service', 'demo-proxy').spec!.type).toBe('NodePort');
    expect(find(render((c) => void (c.proxy.publish = '0.0.0.0:443')), 'Service', 'demo-proxy').spec!.ports).toEqual([{ name: 'client', port: 443, targetPort: 'client', protocol: 'TCP' }]);
    expect(find(render(), 'Service', 'demo-proxy-admin').spec).toMatchObject({ type: 'ClusterIP', ports: [{ port: 8081, targetPort: 'admin' }] });
  });

  it('lets only the sync controller reach the admin port, and only the proxy reach the backends', () => {
    const files = render();
    expect(find(files, 'NetworkPolicy', 'demo-proxy').spec).toEqual({
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'proxy', 'app.kubernetes.io/part-of': 'demo' } },
      policyTypes: ['Ingress'],
      ingress: [
        { ports: [{ port: 8080, protocol: 'TCP' }] },
        { from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'sync', 'app.kubernetes.io/part-of': 'demo' } } }], ports: [{ port: 8081, protocol: 'TCP' }] },
      ],
    });
    expect(find(files, 'NetworkPolicy', 'demo-backend').spec!.ingress).toEqual([
      { from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'proxy', 'app.kubernetes.io/part-of': 'demo' } } }], ports: [{ port: 8080, protocol: 'TCP' }] },
    ]);
  });

  it('runs the sync controller with a Role that only reads EndpointSlices, and the admin token from its own Secret', () => {
    const files = render();
    expect(find(files, 'Role', 'demo-sync').rules).toEqual([{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] }]);
    expect(find(files, 'RoleBinding', 'demo-sync')).toMatchObject({ roleRef: { kind: 'Role', name: 'demo-sync' }, subjects: [{ kind: 'ServiceAccount', name: 'demo-sync', namespace: 'edge' }] });
    expect(podSpec(files, 'demo-sync').serviceAccountName).toBe('demo-sync');
    const sync = container(files, 'demo-sync');
    expect(sync.image).toBe('127.0.0.1:5000/uproxy/uproxy-sync:0.1.0');
    expect(sync.args).toEqual([
      'sync', '--kubernetes', '--namespace', 'edge', '--service', 'demo-backend', '--admin-url', 'http://demo-proxy-admin:8081',
      '--admin-token-file', '/var/run/uproxy/admin-token', '--health-listen', '0.0.0.0:8090',
    ]);
    expect(sync.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(sync.volumeMounts).toEqual([{ name: 'admin-token', mountPath: '/var/run/uproxy', readOnly: true }]);
    expect(podSpec(files, 'demo-sync').volumes).toEqual([{ name: 'admin-token', secret: { secretName: 'demo-sync-admin-token', defaultMode: 0o440 } }]);
    // The app pods talk to no API server: no token of the namespace's default ServiceAccount in them.
    expect(podSpec(files, 'demo-proxy').automountServiceAccountToken).toBe(false);
    expect(podSpec(files, 'demo-backend').automountServiceAccountToken).toBe(false);
  });

  it('holds no plaintext token anywhere but the sync controller\'s admin-token Secret', () => {
    for (const edit of Object.values(guests)) {
      const all = objects(render(edit));
      const secret = all.find((o) => o.kind === 'Secret' && o.metadata?.name === 'demo-sync-admin-token');
      expect(secret).toMatchObject({ data: { 'admin-token': Buffer.from(ADMIN_TOKEN).toString('base64') } });
      const rest = JSON.stringify(all.filter((o) => o !== secret));
      for (const token of [ADMIN_TOKEN, CLIENT_TOKEN]) {
        expect(rest).not.toContain(token);
        expect(rest).not.toContain(Buffer.from(token).toString('base64'));
      }
    }
  });

  it('pins each app image by its digest when its OCI layout exists, and uses :latest otherwise', () => {
    const pinned = render(undefined, { digests: { proxy: PROXY_DIGEST, backend: BACKEND_DIGEST } });
    expect(container(pinned, 'demo-proxy').image).toBe(`127.0.0.1:5000/uproxy/demo-proxy@${PROXY_DIGEST}`);
    expect(container(pinned, 'demo-backend').image).toBe(`127.0.0.1:5000/uproxy/demo-backend@${BACKEND_DIGEST}`);
    const half = render(undefined, { digests: { proxy: null, backend: BACKEND_DIGEST } });
    expect(container(half, 'demo-proxy').image).toBe('127.0.0.1:5000/uproxy/demo-proxy:latest');
  });

  it('labels every object with its component, its fleet and uproxy, and restarts the proxy for a new certificate', () => {
    const files = render();
    for (const object of objects(files)) {
      expect(Object.keys(object.metadata!.labels!).sort(), `${object.kind} ${object.metadata!.name}`).toEqual(['app.kubernetes.io/managed-by', 'app.kubernetes.io/name', 'app.kubernetes.io/part-of']);
      expect(object.metadata!.namespace).toBe('edge');
    }
    const annotation = (certificate: string) => find(render(undefined, { certificate }), 'Deployment', 'demo-proxy').spec!.template.metadata!.annotations!['uproxy/certificate-sha256'];
    expect(annotation(CERTIFICATE)).toMatch(/^[0-9a-f]{64}$/);
    expect(annotation(CERTIFICATE.replace('MIIBcertificate', 'MIIBrenewed'))).not.toBe(annotation(CERTIFICATE));
  });

  it('refuses a fleet name that no label can carry', () => {
    expect(() => render((c) => void (c.name = 'demo-'))).toThrow(/name "demo-" in uproxy.json ends with "-", which a Kubernetes label cannot/);
  });

  it('writes each file as YAML documents after the marker, which parse back to the objects', () => {
    for (const file of render()) {
      const text = manifestText(file);
      expect(text.startsWith(MARKER)).toBe(true);
      const documents = parseAllDocuments(text, { version: '1.1' });
      expect(documents.map((d) => d.toJS())).toEqual(file.objects);
    }
  });
});

describe('export kubernetes options', () => {
  it('takes namespaces, registries and pod networks as Kubernetes and image names have them', () => {
    for (const ok of ['default', 'edge-1', 'a']) expect(namespaceProblem(ok), ok).toBeNull();
    for (const bad of ['Edge', '-a', 'a-', 'a_b', 'a'.repeat(64), '']) expect(namespaceProblem(bad), bad).toMatch(/namespace name/);
    for (const ok of ['127.0.0.1:5000/uproxy', 'ghcr.io/you/fleets', 'localhost:5000', 'registry.example.com', 'you']) expect(readRegistry(ok), ok).toEqual({ prefix: ok });
    // As `uproxy push` takes it: a trailing "/" is no part of the names.
    expect(readRegistry('ghcr.io/you/')).toEqual({ prefix: 'ghcr.io/you' });
    expect(readRegistry('https://ghcr.io/you')).toEqual({ problem: expect.stringMatching(/without a scheme/) });
    for (const bad of ['ghcr.io/You', '', 'ghcr.io//you', 'a b']) expect(readRegistry(bad), bad).toEqual({ problem: expect.stringMatching(/HOST\[:PORT\]\/REPO/) });
    for (const ok of ['10.0.0.0/8', '10.42.0.0/16', 'fd00::/64']) expect(cidrProblem(ok), ok).toBeNull();
    for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0/8', '300.0.0.0/8', '10.0.0.0/8/1', 'pods']) expect(cidrProblem(bad), bad).toMatch(/CIDR/);
  });
});
