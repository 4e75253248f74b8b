import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, uproxy } from './run.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-cli-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('uproxy command line', () => {
  it('--help lists every command and --version prints the package version', async () => {
    const help = await uproxy(['--help'], root);
    expect(help.exitCode).toBe(0);
    for (const command of ['init', 'up', 'down', 'ps', 'logs', 'status']) expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    const version = await uproxy(['--version'], root);
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
  });

  it('shows an example in the help of each command', async () => {
    for (const command of ['init', 'up', 'down', 'ps', 'logs', 'status', 'cert']) {
      const help = await uproxy([command, '--help'], root);
      expect(help.stdout, command).toMatch(new RegExp(`Examples?:\\n  \\$ uproxy ${command === 'init' ? 'init' : command}`));
    }
  });

  it('init prints the client token once with a curl line that reads it from its file', async () => {
    const result = await uproxy(['init', 'demo', '--backends', '2'], root);
    expect(result.exitCode).toBe(0);
    const token = readFileSync(join(root, 'demo/.uproxy/client-token'), 'utf8').trim();
    expect(result.stdout.split(token)).toHaveLength(2);
    expect(result.stdout).toContain('curl --cacert .uproxy/tls/ca.pem -H "X-Auth-Token: $(cat .uproxy/client-token)" https://localhost:8080/');
    // The "Next:" line works as printed, whether or not uproxy is on PATH.
    const next = /^Next: (cd demo && .+) up$/m.exec(result.stdout)?.[1];
    expect(next, result.stdout).toBeDefined();
    const ran = await execa(`${next} --version`, { shell: true, cwd: root, reject: false });
    expect(ran.exitCode, ran.stderr).toBe(0);
    const vm = await uproxy(['init', 'vm', '--runtime', 'qemu'], root);
    expect(vm.stdout).not.toContain('http://127.0.0.1');
    expect(vm.stdout).toMatch(/^Then: the curl line `up` prints/m);
    const again = await uproxy(['init', 'demo'], root);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/^uproxy: .*already has uproxy\.json.*--force/);
  });

  it('init --force over a project from an older uproxy drops proxy sources it no longer has, and nothing of yours', { timeout: 60_000 }, async () => {
    const init = await uproxy(['init', 'older', '--backends', '1'], root);
    expect(init.exitCode, init.stderr).toBe(0);
    const dir = join(root, 'older');
    // What an older scaffold left: a proxy source this one does not have (and would link twice).
    writeFileSync(join(dir, 'proxy/src/tls_none.c'), 'int tls_enabled(void) { return 0; }\n');
    writeFileSync(join(dir, 'proxy/src/notes.txt'), 'mine\n');
    writeFileSync(join(dir, 'backend/src/extra.c'), 'int extra;\n');
    const again = await uproxy(['init', 'older', '--backends', '1', '--force'], root);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(existsSync(join(dir, 'proxy/src/tls_none.c'))).toBe(false);
    expect(existsSync(join(dir, 'proxy/src/tls.c'))).toBe(true);
    expect(readFileSync(join(dir, 'proxy/src/notes.txt'), 'utf8')).toBe('mine\n');
    expect(readFileSync(join(dir, 'backend/src/extra.c'), 'utf8')).toBe('int extra;\n');
    execFileSync('make', ['-C', join(dir, 'proxy'), '-s'], { stdio: 'pipe' });
  });

  it('lists every problem of a bad uproxy.json by path, with no stack trace', async () => {
    const dir = join(root, 'demo');
    const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
    config.backends.count = 0;
    config.proxy.algorithm = 'random';
    writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config));
    const result = await uproxy(['up'], dir);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('backends.count: expected an integer >= 1, got 0');
    expect(result.stderr).toContain('proxy.algorithm: expected one of "round-robin", "least-conn", "p2c", got "random"');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    const debug = await uproxy(['--debug', 'up'], dir);
    expect(debug.stderr).toMatch(/\n\s+at /);
  });

  it('says where to start when there is no project', async () => {
    const result = await uproxy(['up'], root);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^uproxy: no uproxy\.json in .*run `uproxy init`/);
    const ps = await uproxy(['ps'], root);
    expect(ps.exitCode).toBe(1);
    expect(ps.stderr).toContain(`uproxy: no uproxy.json in ${root} or any directory above it`);
    const missing = await uproxy(['-C', join(root, 'nonexistent'), 'ps'], root);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe(`uproxy: -C ${join(root, 'nonexistent')}: no such directory`);
    const down = await uproxy(['down'], join(root, 'demo'));
    expect(down.exitCode).toBe(0);
    expect(down.stdout).toMatch(/Nothing to stop/);
  });

  it('rejects bad option values with what was expected', async () => {
    const result = await uproxy(['up', '--backends', 'zero'], root);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/expected a whole number from 1 to 64, got "zero"/);
    const runtime = await uproxy(['init', 'x', '--runtime', 'docker'], root);
    expect(runtime.stderr).toMatch(/expected one of host, qemu, kraft, got "docker"/);
    const accel = await uproxy(['up', '--accel', 'fast'], root);
    expect(accel.exitCode).toBe(1);
    expect(accel.stderr).toMatch(/'--accel <mode>' argument 'fast' is invalid\. Allowed choices are auto, kvm, tcg/);
  });

  it('up --dry-run prints the commands it would run and starts nothing', async () => {
    const dir = join(root, 'dry');
    await uproxy(['init', dir], root);
    // The configured proxy port (8080) taken by someone else: a dry run starts nothing, so it still prints.
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.once('error', () => resolve()).listen(8080, '127.0.0.1', () => resolve()));
    const result = await uproxy(['up', '--dry-run', '--backends', '2'], dir).finally(() => squatter.close());
    expect(result.exitCode, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe(`make -C ${dir}/proxy`);
    expect(lines.filter((l) => l.includes('/backend/build/backend --listen 127.0.0.1:'))).toHaveLength(2);
    expect(lines.at(-1)).toMatch(/proxy\/build\/uproxy-proxy --listen 127\.0\.0\.1:8080 --admin 127\.0\.0\.1:8081 /);
    const client = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
    const admin = readFileSync(join(dir, '.uproxy/admin-token'), 'utf8').trim();
    expect(result.stdout).not.toContain(client);
    expect(result.stdout).not.toContain(admin);
    expect((await uproxy(['ps'], dir)).stdout).toMatch(/No fleet is running here/);
    const accel = await uproxy(['up', '--dry-run', '--accel', 'kvm'], dir);
    expect(accel.exitCode, accel.stderr).toBe(0);
    expect(accel.stderr).toContain('Note: --accel is only used by the qemu runtime; the host runtime ignores it');
  });

  it('refuses before building when the host cannot run the fleet, as a user error', { timeout: 60_000 }, async () => {
    const noStack = (stderr: string): void => {
      expect(stderr).not.toContain('--debug');
      expect(stderr).not.toMatch(/build (proxy|backend)/);
    };
    const dir = join(root, 'preflight');
    await uproxy(['init', dir], root);

    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve()));
    const busy = (squatter.address() as AddressInfo).port;
    const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
    config.proxy.port = busy;
    writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config));
    const host = await uproxy(['up'], dir).finally(() => squatter.close());
    expect(host.exitCode).toBe(1);
    expect(host.stderr).toContain(`127.0.0.1:${busy} (proxy.port in uproxy.json) is already in use`);
    noStack(host.stderr);

    // Without CAP_NET_ADMIN (root drops it from its bounding set, so the exec'd node lacks it).
    const dropCap = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin', '--'] : [];
    const [file, ...args] = [...dropCap, process.execPath, BIN, 'up', '--runtime', 'qemu'];
    const qemu = await execa(file!, args, { cwd: dir, reject: false, stdin: 'ignore' });
    expect(qemu.exitCode).toBe(1);
    expect(qemu.stderr).toMatch(/^uproxy: missing CAP_NET_ADMIN\..*sudo uproxy up --runtime qemu/);
    noStack(qemu.stderr);

    const kraft = await execa(process.execPath, [BIN, 'up', '--runtime', 'kraft'], {
      cwd: dir, reject: false, stdin: 'ignore', env: { PATH: `${dirname(process.execPath)}:/usr/bin:/bin` }, extendEnv: false,
    });
    expect(kraft.exitCode).toBe(1);
    expect(kraft.stderr).toMatch(/^uproxy: kraft is not installed or not on PATH \(the kraft runtime runs it\): install kraftkit/);
    noStack(kraft.stderr);
    expect(existsSync(join(dir, 'proxy/build'))).toBe(false);
  });

  it('init --tokens-only makes new tokens and changes nothing else; a missing token points at it', { timeout: 60_000 }, async () => {
    const dir = join(root, 'tokens');
    await uproxy(['init', dir], root);
    const configBefore = readFileSync(join(dir, 'uproxy.json'), 'utf8');
    const server = join(dir, 'backend/src/server.c');
    writeFileSync(server, `${readFileSync(server, 'utf8')}/* my change */\n`);
    const serverBefore = readFileSync(server, 'utf8');

    // A lost admin token: the message names the command that makes a new one.
    rmSync(join(dir, '.uproxy/admin-token'));
    const state = { version: 1, fleet: 'tokens', runtime: 'host', proxy: { listen: '127.0.0.1:1', admin: '127.0.0.1:1' }, machines: [], resources: {} };
    writeFileSync(join(dir, '.uproxy/state.json'), JSON.stringify(state));
    const ps = await uproxy(['ps'], dir);
    expect(ps.stdout).toMatch(/cannot read the admin token .*run `uproxy init --tokens-only`/);

    const result = await uproxy(['init', '--tokens-only'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    const client = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
    const admin = readFileSync(join(dir, '.uproxy/admin-token'), 'utf8').trim();
    expect(result.stdout.split(client)).toHaveLength(2);
    expect(result.stdout).not.toContain(admin);
    const config = readFileSync(join(dir, 'uproxy.json'), 'utf8');
    const parsed = JSON.parse(config);
    const before = JSON.parse(configBefore);
    expect(parsed.proxy.tokens[0].sha256).toBe(createHash('sha256').update(client).digest('hex'));
    expect(parsed.proxy.adminTokenSha256).toBe(createHash('sha256').update(admin).digest('hex'));
    expect(config.replace(parsed.proxy.tokens[0].sha256, before.proxy.tokens[0].sha256).replace(parsed.proxy.adminTokenSha256, before.proxy.adminTokenSha256)).toBe(configBefore);
    expect(readFileSync(server, 'utf8')).toBe(serverBefore);
  });

  it('cert says what it has, and what renewing needs, before any fleet runs', async () => {
    const dir = join(root, 'cert');
    await uproxy(['init', dir], root);
    const status = await uproxy(['cert', 'status'], dir);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stdout).toBe('Mode: local-ca\nCertificate: none yet (`uproxy up` makes one)\nNo fleet is running.');
    const renew = await uproxy(['cert', 'renew'], dir);
    expect(renew.exitCode).toBe(1);
    expect(renew.stderr).toMatch(/^uproxy: no fleet is running in .*: `uproxy up` starts one and gets its certificate$/);
    const forced = await uproxy(['cert', 'renew', '--force'], dir);
    expect(forced.stderr).toMatch(/^uproxy: --force asks an ACME CA again before the certificate is due; with mode local-ca/);
    const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
    config.proxy.tls = { mode: 'off' };
    writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config));
    expect((await uproxy(['cert', 'renew'], dir)).stderr).toMatch(/^uproxy: proxy\.tls\.mode is "off": the proxy serves plain HTTP; `uproxy cert renew` renews certificates of modes acme and local-ca/);
    expect((await uproxy(['cert', 'status'], dir)).stdout).toBe('proxy.tls.mode is "off": the proxy serves plain HTTP, with no certificate.');
  });
});
