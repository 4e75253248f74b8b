import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uproxy } from '../cli/run.js';

/**
 * The qemu runtime's `unikraft` guest kind boots the kernels `kraft build` leaves in each app.
 * kraft cannot be installed on these machines, so no real Unikraft kernel exists here: these
 * tests check what `up` would boot (`--dry-run`) and that a missing build is a clear error
 * saying how to make it. The command lines themselves are unit-tested in test/unit/vm-plan.
 */

let root: string;
let dir: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-ukguest-'));
  const init = await uproxy(['init', 'ukfleet', '--runtime', 'qemu', '--backends', '2'], root);
  expect(init.exitCode, init.stderr).toBe(0);
  dir = join(root, 'ukfleet');
  const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
  config.qemu = { guest: 'unikraft' };
  writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('qemu runtime with unikraft guests', () => {
  it('without kraft builds, up stops before any network or machine and says how to build them', async () => {
    const result = await uproxy(['up'], dir);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('no Unikraft kernel to boot: proxy/.unikraft/build/proxy_qemu-x86_64 and backend/.unikraft/build/backend_qemu-x86_64 do not exist');
    expect(result.stderr).toContain('(cd proxy && kraft build --no-prompt --log-type basic --plat qemu --arch x86_64 .)');
    expect(result.stderr).toContain('(cd backend && kraft build --no-prompt --log-type basic --plat qemu --arch x86_64 .)');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir, '.uproxy/state.json'))).toBe(false);
  });

  it('up --dry-run boots each app\'s kernel with netdev.ip and " -- " on its command line', async () => {
    const result = await uproxy(['up', '--dry-run'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    const qemu = result.stdout.split('\n').filter((line) => line.startsWith('qemu-system-x86_64'));
    expect(qemu).toHaveLength(3);
    expect(qemu[0]).toContain(`-kernel ${dir}/backend/.unikraft/build/backend_qemu-x86_64`);
    expect(qemu[0]).toContain("-append 'ukfleet-backend-1 netdev.ip=172.44.0.3/24:172.44.0.1::: -- --listen 172.44.0.3:8080 --name backend-1'");
    expect(qemu[2]).toContain(`-kernel ${dir}/proxy/.unikraft/build/proxy_qemu-x86_64`);
    expect(qemu.every((line) => line.includes('-cpu max'))).toBe(true);
    expect(result.stdout).not.toMatch(/^make /m);
  });

  it('boots a build\'s initrd when kraft left one', async () => {
    const build = join(dir, 'backend/.unikraft/build');
    mkdirSync(build, { recursive: true });
    writeFileSync(join(build, 'initramfs-x86_64.cpio'), 'not a real archive: only its presence matters here');
    const result = await uproxy(['up', '--dry-run'], dir);
    const backend = result.stdout.split('\n').find((line) => line.includes('-name ukfleet-backend-1'))!;
    expect(backend).toContain(`-initrd ${build}/initramfs-x86_64.cpio`);
    // The proxy serves HTTPS (init's local-ca): it boots the initrd uproxy writes with its certificate.
    const proxy = result.stdout.split('\n').find((line) => line.includes('-name ukfleet-proxy'))!;
    expect(proxy).toContain(`-initrd ${dir}/.uproxy/vm/proxy.cpio`);
    expect(proxy).toContain('--tls-cert /uproxy/tls.pem');
    expect(proxy).not.toContain('PRIVATE KEY');
  });
});
