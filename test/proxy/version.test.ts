import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { runProxyRaw, startProxy, type RunningProxy } from './support/proxy.js';

// The proxy's version comes from proxy/VERSION through the Makefile; the package's is in
// package.json. They must be the same release.
const packageVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('proxy: version', () => {
  let backend: TestBackend | undefined;
  let proxy: RunningProxy | undefined;
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
  });

  it('is proxy/VERSION, the same as package.json, in --version and in /stats', async () => {
    expect(readFileSync(new URL('../../proxy/VERSION', import.meta.url), 'utf8').trim()).toBe(packageVersion);
    const printed = await runProxyRaw(['--version']);
    expect(printed.code).toBe(0);
    expect(printed.stdout.trim()).toBe(`uproxy-proxy ${packageVersion}`);
    backend = await startBackend('v');
    proxy = await startProxy({ backends: [{ name: 'v', address: backend.address }] });
    expect((await proxy.stats()).version).toBe(packageVersion);
  });
});
