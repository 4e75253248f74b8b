import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../cli/config/load.js';
import { planFleet } from '../../cli/fleet/plan.js';
import { imageKind, imageProgramArgs, ociArchitecture, planAppImage } from '../../cli/oci/app-image.js';
import { unikraftVersion, uruncAnnotations, uruncJson, URUNC_PATHS } from '../../cli/oci/urunc.js';

const hash = 'a'.repeat(64);
const config = (extra: Record<string, unknown> = {}) =>
  parseConfig(JSON.stringify({ name: 'demo', proxy: { tokens: [{ name: 'ci', sha256: hash }], adminTokenSha256: hash }, ...extra }), 'uproxy.json');

describe('urunc annotations', () => {
  it('name a Unikraft kernel for QEMU, its arguments, and keep the image out of the guest\'s root', () => {
    expect(uruncAnnotations({ programArgs: ['--listen', '0.0.0.0:8080'], hasInitrd: false })).toEqual({
      'com.urunc.unikernel.binary': '/.boot/kernel',
      'com.urunc.unikernel.cmdline': '--listen 0.0.0.0:8080',
      'com.urunc.unikernel.hypervisor': 'qemu',
      'com.urunc.unikernel.mountRootfs': 'false',
      'com.urunc.unikernel.unikernelType': 'unikraft',
    });
  });

  it('add the initrd and the Unikraft release when there are', () => {
    const annotations = uruncAnnotations({ programArgs: [], hasInitrd: true, unikraftVersion: '0.16.3' });
    expect(annotations['com.urunc.unikernel.initrd']).toBe(URUNC_PATHS.initrd);
    expect(annotations['com.urunc.unikernel.unikernelVersion']).toBe('0.16.3');
  });

  it('go into urunc.json base64-encoded, as urunc decodes that file', () => {
    const annotations = uruncAnnotations({ programArgs: ['--name', 'backend'], hasInitrd: false });
    const file = JSON.parse(uruncJson(annotations)) as Record<string, string>;
    expect(Object.keys(file)).toEqual(Object.keys(annotations).sort());
    expect(file['com.urunc.unikernel.hypervisor']).toBe('cWVtdQ==');
    expect(Object.fromEntries(Object.entries(file).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]))).toEqual(annotations);
  });

  it('read the Unikraft release from the core kraft fetched', () => {
    expect(unikraftVersion('UK_VERSION = 0\nUK_SUBVERSION = 16\nUK_EXTRAVERSION = 3\nUK_CODENAME = Telesto\n')).toBe('0.16.3');
    expect(unikraftVersion('# Makefile for Unikraft\nUK_VERSION = 0\nUK_SUBVERSION = 10\nUK_EXTRAVERSION = 0\n')).toBe('0.10.0');
    expect(unikraftVersion('all:\n\t@echo no version here\n')).toBeUndefined();
  });
});

describe('planAppImage', () => {
  it('packs static binaries for the host runtime and microvm guests, kernels for kraft and unikraft guests', () => {
    expect(imageKind(planFleet(config(), '/p', { runtime: 'host' }))).toBe('static');
    expect(imageKind(planFleet(config(), '/p', { runtime: 'qemu' }))).toBe('static');
    expect(imageKind(planFleet(config({ qemu: { guest: 'unikraft' } }), '/p', { runtime: 'qemu' }))).toBe('unikraft');
    expect(imageKind(planFleet(config(), '/p', { runtime: 'kraft' }))).toBe('unikraft');
  });

  it('gives the machines the plan\'s arguments, listening wherever they run and with no backend of a fleet yet', () => {
    const plan = planFleet(config({ backends: { port: 9001 }, proxy: { tokens: [{ name: 'ci', sha256: hash }], adminTokenSha256: hash, port: 8443, adminPort: 0, tls: { mode: 'local-ca' } } }), '/p', { runtime: 'qemu' });
    expect(imageProgramArgs(plan, 'backend')).toEqual(['--listen', '0.0.0.0:9001', '--name', 'backend']);
    const proxy = imageProgramArgs(plan, 'proxy');
    expect(proxy.join(' ')).toMatch(/^--listen 0\.0\.0\.0:8443 --admin 0\.0\.0\.0:8081 --admin-token-sha256 a{64} /);
    expect(proxy).toContain(`ci:${hash}`);
    expect(proxy).not.toContain('--backend');
    // The deployment provides the certificate and key: never the image.
    expect(proxy.slice(-2)).toEqual(['--tls-cert', '/uproxy/tls.pem']);
    expect(imageProgramArgs(planFleet(config(), '/p'), 'proxy')).not.toContain('--tls-cert');
  });

  it('runs a static binary as the entrypoint of an otherwise empty image', () => {
    const plan = planFleet(config(), '/p', { runtime: 'qemu' });
    const image = planAppImage(plan, 'proxy', { kind: 'static', binary: '/p/proxy/build/uproxy-proxy-static' }, 'amd64');
    expect(image.files).toEqual([{ path: 'uproxy-proxy', mode: 0o755, source: '/p/proxy/build/uproxy-proxy-static' }]);
    expect(image.entrypoint).toEqual(['/uproxy-proxy']);
    expect(image.cmd).toEqual(imageProgramArgs(plan, 'proxy'));
    expect(image.exposedPorts).toEqual([8080, 8081]);
    expect(image.annotations).toEqual({});
  });

  it('puts a kernel, its initrd and urunc.json in a urunc image, its arguments as Cmd with no entrypoint', () => {
    const plan = planFleet(config(), '/p', { runtime: 'kraft' });
    const image = planAppImage(plan, 'backend', { kind: 'unikraft', kernel: '/p/backend/k', initrd: '/p/backend/i.cpio' }, 'arm64');
    expect(image.files.map((f) => [f.path, 'source' in f ? f.source : 'text'])).toEqual([
      ['.boot/kernel', '/p/backend/k'],
      ['.boot/rootfs', '/p/backend/i.cpio'],
      ['urunc.json', 'text'],
    ]);
    expect(image.entrypoint).toBeUndefined();
    expect(image.cmd).toEqual(['--listen', '0.0.0.0:8080', '--name', 'backend']);
    expect(image.annotations['com.urunc.unikernel.cmdline']).toBe('--listen 0.0.0.0:8080 --name backend');
    expect(image.labels).toEqual(image.annotations);
    // kraft builds x86_64 kernels, whatever the host.
    expect(image.architecture).toBe('amd64');
  });

  it('refuses arguments a Unikraft command line cannot carry', () => {
    const tokens = Array.from({ length: 60 }, (_, i) => ({ name: `client-${i}`, sha256: hash }));
    const plan = planFleet(config({ proxy: { tokens, adminTokenSha256: hash } }), '/p', { runtime: 'kraft' });
    expect(() => planAppImage(plan, 'proxy', { kind: 'unikraft', kernel: '/k' }, 'amd64')).toThrow(/over Unikraft's 4096.*use fewer tokens, or a static image/);
  });

  it('spells the host CPU as OCI does', () => {
    expect(ociArchitecture('x64')).toBe('amd64');
    expect(ociArchitecture('arm64')).toBe('arm64');
    expect(() => ociArchitecture('ppc64')).toThrow(/ppc64/);
  });
});
