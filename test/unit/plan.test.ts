import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../cli/config/load.js';
import { plainHttpListener, plainHttpProblem, planFleet, planHostProcesses, proxyArgs, publishHttpProblem } from '../../cli/fleet/plan.js';

const CLIENT = 'c'.repeat(64);
const ADMIN = 'd'.repeat(64);
const config = parseConfig(
  JSON.stringify({ name: 'demo', proxy: { tokens: [{ name: 'default', sha256: CLIENT }], adminTokenSha256: ADMIN, algorithm: 'p2c' }, backends: { count: 3 } }),
  'uproxy.json',
);

describe('planFleet', () => {
  it('names one proxy and backend-1..N, with app paths under the project', () => {
    const plan = planFleet(config, '/srv/demo');
    expect(plan.fleet).toBe('demo');
    expect(plan.runtime).toBe('host');
    expect(plan.proxy).toEqual({ name: 'proxy', role: 'proxy', app: { dir: '/srv/demo/proxy', binary: '/srv/demo/proxy/build/uproxy-proxy' } });
    expect(plan.backends.map((b) => b.name)).toEqual(['backend-1', 'backend-2', 'backend-3']);
    expect(plan.backends[0]!.app).toEqual({ dir: '/srv/demo/backend', binary: '/srv/demo/backend/build/backend' });
  });

  it('lets --backends and --runtime override the config; scaling keeps the lowest names', () => {
    expect(planFleet(config, '/p', { backends: 5 }).backends.map((b) => b.name)).toEqual(['backend-1', 'backend-2', 'backend-3', 'backend-4', 'backend-5']);
    expect(planFleet(config, '/p', { backends: 2 }).backends.map((b) => b.name)).toEqual(['backend-1', 'backend-2']);
    expect(planFleet(config, '/p', { runtime: 'qemu' }).runtime).toBe('qemu');
  });

  it('refuses a backend count outside 1..64', () => {
    expect(() => planFleet(config, '/p', { backends: 0 })).toThrow(/integer from 1 to 64, got 0/);
    expect(() => planFleet(config, '/p', { backends: 65 })).toThrow(/got 65/);
  });
});

describe('proxy and backend command lines', () => {
  it('gives the proxy token hashes and every setting from the config', () => {
    const args = proxyArgs(config, { listen: '127.0.0.1:8080', admin: '127.0.0.1:8081', backendNetwork: '127.0.0.1/32' }, [
      { name: 'backend-1', address: '127.0.0.1:9001' },
      { name: 'backend-2', address: '127.0.0.1:9002' },
    ]);
    expect(args.slice(0, 10)).toEqual([
      '--listen', '127.0.0.1:8080',
      '--admin', '127.0.0.1:8081',
      '--admin-token-sha256', ADMIN,
      '--backend', 'backend-1=127.0.0.1:9001',
      '--backend', 'backend-2=127.0.0.1:9002',
    ]);
    expect(args).toContain(`default:${CLIENT}`);
    expect(args.join(' ')).toContain('--algorithm p2c --health-path /health --health-interval-ms 1000');
    expect(args.join(' ')).toContain('--shutdown-timeout-ms 10000 --max-connections 10000');
    // The proxy refuses admin-API backends outside the fleet's network, and caps connections per backend.
    expect(args.join(' ')).toContain('--backend-max-connections 200 --backend-network 127.0.0.1/32');
  });

  it('plans host processes on loopback, backends before the proxy, each with its log', () => {
    const plan = planFleet(config, '/srv/demo', { backends: 2 });
    const processes = planHostProcesses(plan, { proxy: 18080, admin: 18081, backends: { 'backend-1': 19001, 'backend-2': 19002 } }, '/srv/demo/.uproxy/logs');
    expect(processes.map((p) => [p.name, p.role, p.address, p.log])).toEqual([
      ['backend-1', 'backend', '127.0.0.1:19001', '/srv/demo/.uproxy/logs/backend-1.log'],
      ['backend-2', 'backend', '127.0.0.1:19002', '/srv/demo/.uproxy/logs/backend-2.log'],
      ['proxy', 'proxy', '127.0.0.1:18080', '/srv/demo/.uproxy/logs/proxy.log'],
    ]);
    expect(processes[0]!.command).toEqual({
      file: '/srv/demo/backend/build/backend',
      args: ['--listen', '127.0.0.1:19001', '--name', 'backend-1'],
    });
    const proxy = processes[2]!.command;
    expect(proxy.file).toBe('/srv/demo/proxy/build/uproxy-proxy');
    expect(proxy.args).toEqual(expect.arrayContaining(['backend-1=127.0.0.1:19001', 'backend-2=127.0.0.1:19002', '127.0.0.1:18081']));
  });

  it('fails loudly when a backend has no port', () => {
    const plan = planFleet(config, '/p', { backends: 2 });
    expect(() => planHostProcesses(plan, { proxy: 1, admin: 2, backends: { 'backend-1': 3 } }, '/l')).toThrow(/backend-2/);
  });
});

describe('plain HTTP beyond this host', () => {
  const withProxy = (proxy: Record<string, unknown>) =>
    parseConfig(JSON.stringify({ ...JSON.parse(JSON.stringify(config)), proxy: { ...config.proxy, ...proxy } }), 'uproxy.json');

  it('is refused when a VM fleet publishes the proxy with TLS off, unless allowPlainHttp says it is meant', () => {
    const published = withProxy({ publish: '0.0.0.0:9090', tls: { mode: 'off' } });
    expect(plainHttpProblem(planFleet(published, '/p', { runtime: 'qemu' }))).toMatch(/proxy\.publish "0\.0\.0\.0:9090" would serve plain HTTP beyond this host.*"mode": "local-ca"/);
    expect(plainHttpProblem(planFleet(published, '/p', { runtime: 'kraft' }))).toMatch(/plain HTTP/);
    expect(plainHttpProblem(planFleet(withProxy({ publish: '0.0.0.0:9090', tls: { mode: 'off', allowPlainHttp: true } }), '/p', { runtime: 'qemu' }))).toBeNull();
  });

  it('is refused on the host runtime too, where the proxy listens on the published address itself', () => {
    const plan = planFleet(withProxy({ publish: '0.0.0.0:9443', tls: { mode: 'off' } }), '/p', { runtime: 'host' });
    expect(plainHttpProblem(plan)).toMatch(/plain HTTP/);
    const proxy = planHostProcesses(plan, { proxy: 1, admin: 2, backends: { 'backend-1': 3, 'backend-2': 4, 'backend-3': 5 } }, '/l').at(-1)!;
    expect(proxy.address).toBe('0.0.0.0:9443');
    expect(proxy.command.args.slice(0, 4)).toEqual(['--listen', '0.0.0.0:9443', '--admin', '127.0.0.1:2']);
  });

  it('is allowed on loopback, without publish, and with HTTPS', () => {
    expect(plainHttpProblem(planFleet(withProxy({ publish: '127.0.0.1:9090' }), '/p', { runtime: 'qemu' }))).toBeNull();
    expect(plainHttpProblem(planFleet(config, '/p', { runtime: 'qemu' }))).toBeNull();
    expect(plainHttpProblem(planFleet(withProxy({ publish: '0.0.0.0:9090', tls: { mode: 'local-ca' } }), '/p', { runtime: 'qemu' }))).toBeNull();
  });

  it('has its opt-in refused where it means nothing', () => {
    expect(() => withProxy({ tls: { mode: 'local-ca', allowPlainHttp: true } })).toThrow(/allowPlainHttp.*only used when mode is "off"/);
  });
});

describe('the proxy certificate on the command line', () => {
  it('is --tls-cert .uproxy/tls/proxy.pem for local-ca and files, absent with TLS off; never a key', () => {
    const withTls = (tls: unknown) => parseConfig(JSON.stringify({ ...JSON.parse(JSON.stringify(config)), proxy: { ...config.proxy, tls } }), 'uproxy.json');
    const ports = { proxy: 18080, admin: 18081, backends: { 'backend-1': 1, 'backend-2': 2, 'backend-3': 3 } };
    for (const tls of [{ mode: 'local-ca' }, { mode: 'files', certFile: 'chain.pem', keyFile: 'key.pem' }]) {
      const plan = planFleet(withTls(tls), '/srv/demo');
      expect(plan.proxyCertFile).toBe('/srv/demo/.uproxy/tls/proxy.pem');
      const args = planHostProcesses(plan, ports, '/l').at(-1)!.command.args;
      expect(args.slice(args.indexOf('--tls-cert'), args.indexOf('--tls-cert') + 2)).toEqual(['--tls-cert', '/srv/demo/.uproxy/tls/proxy.pem']);
      expect(args.join(' ')).not.toMatch(/key\.pem|PRIVATE/);
    }
    const plain = planFleet(config, '/srv/demo');
    expect(plain.proxyCertFile).toBeNull();
    expect(planHostProcesses(plain, ports, '/l').at(-1)!.command.args).not.toContain('--tls-cert');
    expect(proxyArgs(config, { listen: 'a:1', admin: 'a:2', backendNetwork: 'a/32' }, [], '/c.pem').slice(-2)).toEqual(['--tls-cert', '/c.pem']);
  });
});

describe('the plain HTTP listener (proxy.publishHttp)', () => {
  const withTls = (proxy: Record<string, unknown>) => parseConfig(JSON.stringify({ ...JSON.parse(JSON.stringify(config)), proxy: { ...config.proxy, ...proxy } }), 'uproxy.json');
  const acme = (challenge?: string) => withTls({ publish: '203.0.113.7:443', tls: { mode: 'acme', acme: { email: 'a@example.com', domains: ['fleet.example.com'], ...(challenge ? { challenge } : {}) } } });
  const ports = { proxy: 1, admin: 2, backends: { 'backend-1': 3, 'backend-2': 4, 'backend-3': 5 } };

  it('is port 80 of the published address for ACME http-01, where the CA fetches the token', () => {
    expect(plainHttpListener(acme())).toBe('203.0.113.7:80');
    const args = planHostProcesses(planFleet(acme(), '/p'), ports, '/l').at(-1)!.command.args;
    expect(args.slice(args.indexOf('--redirect-listen'), args.indexOf('--redirect-listen') + 2)).toEqual(['--redirect-listen', '203.0.113.7:80']);
  });

  it('is none for tls-alpn-01 or local-ca unless publishHttp asks for one', () => {
    expect(plainHttpListener(acme('tls-alpn-01'))).toBeUndefined();
    expect(plainHttpListener(withTls({ tls: { mode: 'local-ca' } }))).toBeUndefined();
    expect(plainHttpListener(withTls({ tls: { mode: 'local-ca' }, publishHttp: '0.0.0.0:8000' }))).toBe('0.0.0.0:8000');
    expect(planHostProcesses(planFleet(withTls({ tls: { mode: 'local-ca' } }), '/p'), ports, '/l').at(-1)!.command.args).not.toContain('--redirect-listen');
  });

  it('runs on the host runtime only, which the error says', () => {
    expect(publishHttpProblem(planFleet(acme(), '/p'))).toBeNull();
    expect(publishHttpProblem(planFleet(acme(), '/p', { runtime: 'qemu' }))).toMatch(/^proxy\.tls\.mode "acme" runs on the host runtime only for now .*--runtime host/);
    expect(publishHttpProblem(planFleet(withTls({ tls: { mode: 'local-ca' }, publishHttp: '0.0.0.0:80', publish: '0.0.0.0:443' }), '/p', { runtime: 'kraft' }))).toMatch(/^proxy\.publishHttp runs on the host runtime only/);
    expect(publishHttpProblem(planFleet(withTls({ tls: { mode: 'local-ca' } }), '/p', { runtime: 'qemu' }))).toBeNull();
  });
});
