import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { syncFromKubernetes, type KubernetesSyncOptions } from '../../cli/core/sync.js';

/** `uproxy sync --kubernetes` refuses bad options before it reads credentials or connects anywhere. */

const dir = mkdtempSync(join(tmpdir(), 'uproxy-sync-options-'));
const tokenFile = join(dir, 'admin-token');
writeFileSync(tokenFile, 'admin-secret\n');
const emptyFile = join(dir, 'empty');
writeFileSync(emptyFile, '\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const good: KubernetesSyncOptions = { namespace: 'shop', service: 'api', adminUrl: 'http://uproxy-admin:9090', adminTokenFile: tokenFile, drainTimeoutMs: 30_000 };
/** Runs it with no credentials around (no KUBECONFIG, an empty home, not in a pod) but those in `env`. */
const run = (changes: Partial<KubernetesSyncOptions>, env: NodeJS.ProcessEnv = {}): Promise<void> => {
  const saved = { KUBECONFIG: process.env.KUBECONFIG, HOME: process.env.HOME, KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST };
  Object.assign(process.env, { KUBECONFIG: '', HOME: dir, KUBERNETES_SERVICE_HOST: '', ...env });
  const lines: string[] = [];
  return syncFromKubernetes({ ...good, ...changes }, { write: (line) => lines.push(line), signal: AbortSignal.abort() }).finally(() => Object.assign(process.env, saved));
};

describe('syncFromKubernetes options', () => {
  it('wants Kubernetes names for the namespace and the Service', async () => {
    await expect(run({ namespace: 'Shop' })).rejects.toThrow(/--namespace "Shop": expected a Kubernetes name/);
    await expect(run({ service: 'api_v2' })).rejects.toThrow(/--service "api_v2": expected a Kubernetes name/);
  });

  it('wants the admin listener as http://HOST:PORT', async () => {
    await expect(run({ adminUrl: 'uproxy-admin:9090' })).rejects.toThrow(/--admin-url "uproxy-admin:9090": expected http:\/\/HOST:PORT/);
    await expect(run({ adminUrl: 'https://uproxy-admin:9090' })).rejects.toThrow(/speaks plain HTTP/);
    await expect(run({ adminUrl: 'http://uproxy-admin:9090/stats' })).rejects.toThrow(/with no path/);
  });

  it('reads the admin token from its file, which must hold one', async () => {
    await expect(run({ adminTokenFile: join(dir, 'missing') })).rejects.toThrow(/--admin-token-file .*missing: cannot read it/);
    await expect(run({ adminTokenFile: emptyFile })).rejects.toThrow(/is empty: it must hold the proxy's admin token/);
  });

  it('wants ADDRESS:PORT to serve /healthz on', async () => {
    await expect(run({ healthListen: '8090' })).rejects.toThrow(/--health-listen "8090": expected ADDRESS:PORT/);
    await expect(run({ healthListen: '0.0.0.0:70000' })).rejects.toThrow(/expected ADDRESS:PORT/);
  });

  it('says where credentials come from when there are none', async () => {
    await expect(run({})).rejects.toThrow(/no Kubernetes credentials: set KUBECONFIG, or write ~\/.kube\/config/);
    await expect(run({}, { KUBECONFIG: join(dir, 'nope') })).rejects.toThrow(/cannot read the Kubernetes credentials \(KUBECONFIG=.*nope\)/);
  });
});
