import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubernetesObject } from '../../cli/kubernetes/manifests.js';
import { objectProblems } from '../../cli/kubernetes/validate.js';
import { projectClient, uproxy } from '../cli/run.js';
import { freePort, proxyBin } from '../proxy/support/proxy.js';

/** `uproxy export kubernetes` as a user runs it, on projects fresh from `init --runtime qemu`. */

const REGISTRY = '127.0.0.1:5000/uproxy';
let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-export-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A new qemu project whose uproxy.json is then changed by `edit`. */
async function project(name: string, edit: (config: Record<string, any>) => void = () => {}): Promise<string> {
  const init = await uproxy(['init', name, '--runtime', 'qemu'], root);
  expect(init.exitCode, init.stderr).toBe(0);
  const dir = join(root, name);
  const file = join(dir, 'uproxy.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, any>;
  edit(config);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return dir;
}

async function exportTo(dir: string, ...args: string[]) {
  return uproxy(['export', 'kubernetes', ...args], dir);
}

/** Every file the export wrote, by name, and its objects parsed from YAML as kubectl reads it. */
function read(out: string): { texts: Record<string, string>; objects: Record<string, KubernetesObject[]> } {
  const texts: Record<string, string> = {};
  const objects: Record<string, KubernetesObject[]> = {};
  for (const name of readdirSync(out).sort()) {
    texts[name] = readFileSync(join(out, name), 'utf8');
    if (!name.endsWith('.yaml')) continue;
    const documents = parseAllDocuments(texts[name]!, { version: '1.1' });
    for (const d of documents) expect(d.errors, name).toEqual([]);
    objects[name] = documents.map((d) => d.toJS() as KubernetesObject);
  }
  return { texts, objects };
}

const podSpec = (objects: KubernetesObject[], name: string) => {
  const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === name);
  if (deployment?.kind !== 'Deployment') throw new Error(`no Deployment ${name}`);
  return deployment.spec!.template.spec!;
};

describe('uproxy export kubernetes', () => {
  for (const guest of ['microvm', 'unikraft'] as const) {
    it(`writes valid YAML for a qemu project with ${guest} guests, secrets 0600 and git-ignored, the same on a second run`, async () => {
      const dir = await project(`k8s-${guest}`, (c) => void (c.qemu = { guest }));
      const out = join(dir, 'manifests');
      const first = await exportTo(dir, '-o', 'manifests', '--registry', REGISTRY);
      expect(first.exitCode, first.stderr).toBe(0);
      expect(first.stdout).toContain('manifests/proxy-secret.yaml  Secret k8s-' + guest + '-proxy-tls (mode 0600');
      expect(first.stdout).toMatch(/Next: kubectl apply -f manifests\//);

      const { texts, objects } = read(out);
      expect(Object.keys(texts)).toEqual(['.gitignore', 'backend.yaml', 'proxy-secret.yaml', 'proxy.yaml', 'sync-secret.yaml', 'sync.yaml']);
      const all = Object.values(objects).flat();
      expect(all).toHaveLength(13);
      for (const object of all) expect(objectProblems(object), `${object.kind} ${object.metadata?.name}`).toEqual([]);

      for (const name of Object.keys(texts)) {
        expect(statSync(join(out, name)).mode & 0o777, name).toBe(name.endsWith('-secret.yaml') ? 0o600 : 0o644);
      }
      expect(texts['.gitignore']).toMatch(/^proxy-secret\.yaml$/m);
      expect(texts['.gitignore']).toMatch(/^sync-secret\.yaml$/m);

      const expected = guest === 'unikraft' ? 'urunc' : undefined;
      expect(podSpec(all, `k8s-${guest}-proxy`).runtimeClassName).toBe(expected);
      expect(podSpec(all, `k8s-${guest}-backend`).runtimeClassName).toBe(expected);

      // Tokens: the admin token only in the sync controller's Secret, the client token nowhere.
      const admin = readFileSync(join(dir, '.uproxy/admin-token'), 'utf8').trim();
      const client = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
      for (const [name, text] of Object.entries(texts)) {
        for (const token of [admin, client]) {
          const hidden = name === 'sync-secret.yaml' && token === admin;
          expect(text.includes(Buffer.from(token).toString('base64')), `${name}`).toBe(hidden);
          expect(text.includes(token), name).toBe(false);
        }
      }

      // The proxy's certificate, from the project CA, for the names its Service has in the cluster.
      const secret = objects['proxy-secret.yaml']![0]!;
      const pem = Buffer.from((secret as { data: Record<string, string> }).data['proxy.pem']!, 'base64').toString('utf8');
      expect(pem).toMatch(/-----BEGIN PRIVATE KEY-----/);
      const leaf = new X509Certificate(pem);
      expect(leaf.subjectAltName).toContain(`DNS:k8s-${guest}-proxy.default.svc.cluster.local`);
      expect(leaf.checkIssued(new X509Certificate(readFileSync(join(dir, '.uproxy/tls/ca.pem'))))).toBe(true);

      const second = await exportTo(dir, '-o', 'manifests', '--registry', REGISTRY);
      expect(second.exitCode, second.stderr).toBe(0);
      expect(read(out).texts).toEqual(texts);
      expect(second.stdout).not.toContain('issued now');
    });
  }

  it('renders a proxy command line the real proxy starts with: no backend, its certificate, backends only from the pod network', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const dir = await project('runs', (c) => Object.assign(c.proxy, { port, adminPort }));
    const result = await exportTo(dir, '--registry', REGISTRY);
    expect(result.exitCode, result.stderr).toBe(0);
    const { objects } = read(join(dir, 'k8s'));
    const pem = Buffer.from((objects['proxy-secret.yaml']![0] as { data: Record<string, string> }).data['proxy.pem']!, 'base64');
    const certificate = join(dir, 'mounted-proxy.pem');
    writeFileSync(certificate, pem, { mode: 0o600 });
    const args = podSpec(objects['proxy.yaml']!, 'runs-proxy').containers[0]!.args!.map((arg) => (arg === '/etc/uproxy/tls/proxy.pem' ? certificate : arg));
    const proxy = spawn(proxyBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proxy.stdout.on('data', (d) => (output += d));
    proxy.stderr.on('data', (d) => (output += d));
    try {
      const admin = `http://127.0.0.1:${adminPort}`;
      let healthz: number | undefined;
      for (let i = 0; i < 100 && healthz === undefined; i++) {
        healthz = await fetch(`${admin}/healthz`).then((r) => r.status, () => undefined);
        if (healthz === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      expect(healthz, output).toBe(200);
      expect(output).toMatch(/event=start .* backends=0 /);
      // HTTPS with the Secret's certificate, trusted through the project CA; no backend yet.
      const client = projectClient(dir);
      const early = await request(`https://localhost:${port}/`, { dispatcher: client.agent, headers: { 'x-auth-token': client.token } });
      expect(early.statusCode).toBe(503);
      expect(await early.body.json()).toEqual({ error: 'no backend available' });
      await client.agent.close();
      const token = readFileSync(join(dir, '.uproxy/admin-token'), 'utf8').trim();
      const add = (address: string) =>
        fetch(`${admin}/backends`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ name: 'pod', address }) });
      const outside = await add('127.0.0.1:8080');
      expect(outside.status).toBe(400);
      expect(await outside.json()).toEqual({ error: "'127.0.0.1:8080': the address is outside the fleet's network (--backend-network); add backends there only" });
      expect((await add('10.42.0.7:8080')).status).toBe(201);
    } finally {
      proxy.kill('SIGTERM');
      await once(proxy, 'exit');
    }
  });

  it('writes to k8s/ in the project from any directory in it, and pins images by the digest of their OCI layout', async () => {
    const dir = await project('pinned');
    const digest = `sha256:${'ab'.repeat(32)}`;
    mkdirSync(join(dir, '.uproxy/oci/proxy'), { recursive: true });
    // What `uproxy build --oci` leaves (cli/oci/layout.ts): an index naming one manifest tagged latest.
    const manifest = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1, annotations: { 'org.opencontainers.image.ref.name': 'latest' } };
    writeFileSync(join(dir, '.uproxy/oci/proxy/index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [manifest] }));
    const result = await exportTo(join(dir, 'backend'), '--registry', REGISTRY, '--namespace', 'edge', '--service-type', 'NodePort');
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('Next: kubectl create namespace edge (once), then kubectl apply -f ../k8s/');
    const { objects } = read(join(dir, 'k8s'));
    expect(podSpec(objects['proxy.yaml']!, 'pinned-proxy').containers[0]!.image).toBe(`${REGISTRY}/pinned-proxy@${digest}`);
    expect(podSpec(objects['backend.yaml']!, 'pinned-backend').containers[0]!.image).toBe(`${REGISTRY}/pinned-backend:latest`);
    expect(objects['proxy.yaml']!.find((o) => o.kind === 'Service' && o.metadata?.name === 'pinned-proxy')).toMatchObject({ spec: { type: 'NodePort' } });
    expect(podSpec(objects['sync.yaml']!, 'pinned-sync').containers[0]!.args).toEqual([
      'sync', '--kubernetes', '--namespace', 'edge', '--service', 'pinned-backend', '--admin-url', 'http://pinned-proxy-admin:8081',
      '--admin-token-file', '/var/run/uproxy/admin-token', '--health-listen', '0.0.0.0:8090',
    ]);

    writeFileSync(join(dir, '.uproxy/oci/proxy/index.json'), '{"manifests": []}');
    const broken = await exportTo(dir, '--registry', REGISTRY);
    expect(broken.exitCode).toBe(1);
    expect(broken.stderr).toBe(`uproxy: ${join(dir, '.uproxy/oci/proxy/index.json')} is not an OCI index with a manifest tagged "latest": run \`uproxy build --oci\` to write the image again`);
  });

  it('serves your own certificate and key (proxy.tls.mode files), as up does', async () => {
    // The project CA's certificate and key stand in for yours: any matching pair will do.
    const dir = await project('own-certificate', (c) => void (c.proxy.tls = { mode: 'files', certFile: '.uproxy/tls/ca.pem', keyFile: '.uproxy/tls/ca.key' }));
    const result = await exportTo(dir, '--registry', REGISTRY);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Certificate: expires .*, from uproxy local CA \(own-certificate\)$/m);
    const { objects } = read(join(dir, 'k8s'));
    const pem = Buffer.from((objects['proxy-secret.yaml']![0] as { data: Record<string, string> }).data['proxy.pem']!, 'base64').toString('utf8');
    expect(pem).toBe(`${readFileSync(join(dir, '.uproxy/tls/ca.pem'), 'utf8').trimEnd()}\n${readFileSync(join(dir, '.uproxy/tls/ca.key'), 'utf8').trimEnd()}\n`);
  });

  it('leaves files it did not write alone unless --force, and removes its own that it no longer writes', async () => {
    const dir = await project('owned');
    const out = join(dir, 'k8s');
    mkdirSync(out);
    writeFileSync(join(out, 'proxy.yaml'), 'kind: ConfigMap # mine\n');
    writeFileSync(join(out, '.gitignore'), 'notes.txt\n');
    const refused = await exportTo(dir, '--registry', REGISTRY);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe(
      `uproxy: ${join(out, 'proxy.yaml')} exists and was not written by \`uproxy export kubernetes\`: move it away, export to another directory (-o DIR), or overwrite it with --force`,
    );
    expect(readdirSync(out).sort()).toEqual(['.gitignore', 'proxy.yaml']);

    const forced = await exportTo(dir, '--registry', REGISTRY, '--force');
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(readFileSync(join(out, 'proxy.yaml'), 'utf8')).toMatch(/^# Written by `uproxy export kubernetes`/);
    // Your .gitignore keeps its lines and gains the secret files.
    expect(readFileSync(join(out, '.gitignore'), 'utf8')).toMatch(/^notes\.txt\n\n# uproxy export kubernetes: .*\nproxy-secret\.yaml\nsync-secret\.yaml\n$/);

    const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8')) as Record<string, any>;
    config.proxy.tls = { mode: 'off' };
    writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config));
    const plain = await exportTo(dir, '--registry', REGISTRY);
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(plain.stdout).toContain('Removed k8s/proxy-secret.yaml, which an earlier export wrote and this one does not.');
    expect(readdirSync(out)).not.toContain('proxy-secret.yaml');
    expect(read(out).texts['proxy.yaml']).not.toContain('--tls-cert');
  });

  it('explains bad options and projects it cannot export', async () => {
    const dir = await project('options');
    const cases: [string[], string][] = [
      [[], "error: required option '--registry <host/repo>' not specified"],
      [['--registry', 'https://ghcr.io/you'], "error: option '--registry <host/repo>' argument 'https://ghcr.io/you' is invalid. expected HOST[:PORT]/REPO without a scheme"],
      [['--registry', REGISTRY, '--namespace', 'Edge'], "error: option '--namespace <ns>' argument 'Edge' is invalid. expected a Kubernetes namespace name"],
      [['--registry', REGISTRY, '--service-type', 'ClusterIP'], "error: option '--service-type <type>' argument 'ClusterIP' is invalid. Allowed choices are LoadBalancer, NodePort."],
      [['--registry', REGISTRY, '--pod-network', '10.0.0.0'], "error: option '--pod-network <cidr>' argument '10.0.0.0' is invalid. expected the pods' address range in CIDR form"],
      [['--registry', REGISTRY, '-o', 'uproxy.json'], `uproxy: ${join(dir, 'uproxy.json')} is a file, not a directory: choose another one with -o DIR`],
    ];
    for (const [args, message] of cases) {
      const result = await exportTo(dir, ...args);
      expect(result.exitCode, args.join(' ')).toBe(1);
      expect(result.stderr.startsWith(message), `${args.join(' ')}: ${result.stderr}`).toBe(true);
    }

    const ownBackend = await project('own-backend', (c) => void (c.backends.command = ['./run.sh']));
    const refusedBackend = await exportTo(ownBackend, '--registry', REGISTRY);
    expect(refusedBackend.exitCode).toBe(1);
    expect(refusedBackend.stderr).toMatch(/^uproxy: backends\.command in uproxy\.json runs your app as a host process, but in Kubernetes each backend pod runs its image with the backend contract .*: remove backends\.command and backends\.env to export$/);

    const mismatched = await project('mismatched', (c) => void (c.proxy.adminTokenSha256 = 'e'.repeat(64)));
    const refused = await exportTo(mismatched, '--registry', REGISTRY);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/^uproxy: the admin token in \.uproxy\/admin-token is not the one proxy\.adminTokenSha256 in uproxy\.json names, .*run `uproxy init --tokens-only`/);

    const acme = await project('acme', (c) => {
      c.runtime = 'host';
      c.proxy.publish = '0.0.0.0:443';
      c.proxy.tls = { mode: 'acme', acme: { email: 'ops@example.com', domains: ['fleet.example.com'] } };
    });
    const noCertificate = await exportTo(acme, '--registry', REGISTRY);
    expect(noCertificate.exitCode).toBe(1);
    expect(noCertificate.stderr).toMatch(/^uproxy: proxy\.tls\.mode is "acme" and there is no certificate from the ACME CA yet in .*proxy\.pem: run `uproxy up`/);
    expect(readdirSync(acme)).not.toContain('k8s');
  });
});
