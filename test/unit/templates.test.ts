import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../cli/config/load.js';
import { fleetNameFrom, initProject } from '../../cli/core/init.js';
import { templateFiles } from '../../cli/templates.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-init-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

describe('uproxy init', () => {
  it('writes the proxy sources, the backend app, build files and a valid uproxy.json', async () => {
    const dir = join(root, 'My Demo');
    const result = await initProject(dir, { runtime: 'host', backends: 4, force: false });
    for (const file of [
      'uproxy.json', 'uproxy.schema.json', '.gitignore',
      'proxy/Makefile', 'proxy/Kraftfile', 'proxy/Dockerfile', 'proxy/Makefile.uk', 'proxy/llhttp.uk', 'proxy/llhttp.sha256',
      'backend/src/server.c', 'backend/src/request.c', 'backend/src/request.h',
      'backend/Makefile', 'backend/Kraftfile', 'backend/Dockerfile', 'backend/Makefile.uk', 'backend/llhttp.uk', 'backend/llhttp.sha256',
    ]) {
      expect(existsSync(join(dir, file)), file).toBe(true);
    }
    // templates/shared/ is one source for both apps' llhttp build, not a directory of its own.
    expect(result.files.filter((f) => f.startsWith('shared/'))).toEqual([]);
    for (const file of ['llhttp.uk', 'llhttp.sha256']) {
      expect(readFileSync(join(dir, 'backend', file), 'utf8')).toBe(readFileSync(join(dir, 'proxy', file), 'utf8'));
    }
    expect(result.files.filter((f) => f.startsWith('proxy/src/')).length).toBeGreaterThan(0);
    expect(readFileSync(join(dir, '.gitignore'), 'utf8')).toMatch(/^\.uproxy\/$/m);
    // The build outputs: make's, kraft's (and its kconfig), and the elfloader directory rootfs.
    const ignored = readFileSync(join(dir, '.gitignore'), 'utf8').split('\n');
    for (const output of ['build/', '.unikraft/', '.config*', 'rootfs/']) expect(ignored).toContain(output);
    expect(readFileSync(join(dir, 'proxy/Dockerfile'), 'utf8')).toMatch(/FROM scratch/);
    expect(readFileSync(join(dir, 'backend/Kraftfile'), 'utf8')).toMatch(/^spec: v0\.6$/m);

    const config = loadConfig(dir);
    expect(config).toMatchObject({ name: 'my-demo', runtime: 'host', backends: { count: 4 } });
    expect(JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8')).$schema).toBe('./uproxy.schema.json');
    const schema = JSON.parse(readFileSync(join(dir, 'uproxy.schema.json'), 'utf8'));
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['name', 'runtime', 'proxy', 'backends', 'network']));
  });

  it('stores only token hashes in uproxy.json and the plaintext in 0600 files', async () => {
    const result = await initProject(root, { runtime: 'host', backends: 3, force: false });
    const client = readFileSync(join(root, '.uproxy/client-token'), 'utf8').trim();
    const admin = readFileSync(join(root, '.uproxy/admin-token'), 'utf8').trim();
    expect(client).toBe(result.clientToken);
    expect(Buffer.from(client, 'base64url')).toHaveLength(32);
    expect(client).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(join(root, '.uproxy/client-token')).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, '.uproxy/admin-token')).mode & 0o777).toBe(0o600);
    const text = readFileSync(join(root, 'uproxy.json'), 'utf8');
    expect(text).not.toContain(client);
    expect(text).not.toContain(admin);
    const config = loadConfig(root);
    expect(config.proxy.tokens).toEqual([{ name: 'default', sha256: sha256(client) }]);
    expect(config.proxy.adminTokenSha256).toBe(sha256(admin));
  });

  it('refuses to overwrite without --force, and makes new tokens with it', async () => {
    const first = await initProject(root, { runtime: 'qemu', backends: 3, force: false });
    writeFileSync(join(root, 'backend/src/server.c'), '/* mine */');
    await expect(initProject(root, { runtime: 'host', backends: 3, force: false })).rejects.toThrow(/already has uproxy\.json.*--force/);
    expect(readFileSync(join(root, 'backend/src/server.c'), 'utf8')).toBe('/* mine */');
    const ca = readFileSync(join(root, '.uproxy/tls/ca.pem'), 'utf8');
    expect(statSync(join(root, '.uproxy/tls/ca.key')).mode & 0o777).toBe(0o600);
    const second = await initProject(root, { runtime: 'host', backends: 3, force: true });
    expect(second.clientToken).not.toBe(first.clientToken);
    // Clients may trust the project CA already: --force keeps it.
    expect(readFileSync(join(root, '.uproxy/tls/ca.pem'), 'utf8')).toBe(ca);
    expect(readFileSync(join(root, 'backend/src/server.c'), 'utf8')).not.toBe('/* mine */');
  });

  it('never copies build output or the fuzz harness of the package proxy', () => {
    expect(templateFiles().some((f) => f.to.includes('/build/'))).toBe(false);
    expect(templateFiles().filter((f) => f.to.startsWith('proxy/fuzz/'))).toEqual([]);
  });

  it('derives a valid fleet name from any directory name', () => {
    expect(fleetNameFrom('/x/My Demo_2')).toBe('my-demo-2');
    expect(fleetNameFrom('/x/42')).toBe('fleet');
    expect(fleetNameFrom('/x/a'.padEnd(60, 'b'))).toHaveLength(24);
  });
});
