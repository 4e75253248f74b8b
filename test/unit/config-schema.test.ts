import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../cli/config/load.js';
import { DEFAULT_PORTS, machinePorts } from '../../cli/config/schema.js';
import { UserError } from '../../cli/errors.js';

const HASH = 'a'.repeat(64);
const minimal = { name: 'demo', proxy: { tokens: [{ name: 'default', sha256: HASH }], adminTokenSha256: HASH } };

function problems(config: unknown): string[] {
  try {
    parseConfig(typeof config === 'string' ? config : JSON.stringify(config), 'uproxy.json');
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    return (error as Error).message.split('\n').slice(1).map((l) => l.trim());
  }
  throw new Error('the config was accepted');
}

function withChange(change: (c: Record<string, any>) => void): unknown {
  const copy = structuredClone(minimal) as Record<string, any>;
  change(copy);
  return copy;
}

describe('uproxy.json schema', () => {
  it('fills every default from the schema', () => {
    const config = parseConfig(JSON.stringify(minimal), 'uproxy.json');
    expect(config.runtime).toBe('host');
    expect(config.proxy).toMatchObject({ app: 'proxy', port: 8080, adminPort: 8081, algorithm: 'round-robin', maxConnections: 10000 });
    expect(config.proxy.timeouts).toEqual({ connectMs: 2000, responseMs: 30000, headerMs: 10000, idleMs: 60000, shutdownMs: 10000 });
    expect(config.backends).toMatchObject({ count: 3, app: 'backend', binary: 'build/backend', port: 8080 });
    expect(config.backends.health).toEqual({ path: '/health', intervalMs: 1000, timeoutMs: 1000, fall: 2, rise: 2 });
    expect(config.network).toEqual({ bridge: 'uproxy0', subnet: '172.44.0.0/24' });
  });

  it('takes qemu.accel from uproxy.json (auto by default) and refuses other values', () => {
    expect(parseConfig(JSON.stringify(minimal), 'uproxy.json').qemu.accel).toBe('auto');
    expect(parseConfig(JSON.stringify(withChange((c) => (c.qemu = { accel: 'tcg' }))), 'uproxy.json').qemu.accel).toBe('tcg');
    expect(problems(withChange((c) => (c.qemu = { accel: 'hvf' })))).toEqual([expect.stringMatching(/^qemu\.accel: .*"auto".*"kvm".*"tcg"/)]);
  });

  it('rejects backends.image, which no runtime implements, instead of ignoring it', () => {
    expect(problems(withChange((c) => (c.backends = { image: 'backend.img' })))).toEqual(['backends: unknown key "image" (check the spelling; uproxy.schema.json lists every key)']);
  });

  it('gives machines with their own address (VM runtimes) the default port for 0', () => {
    const config = parseConfig(JSON.stringify(withChange((c) => {
      c.proxy.port = 0;
      c.proxy.adminPort = 9000;
      c.backends = { port: 0 };
    })), 'uproxy.json');
    expect(machinePorts(config)).toEqual({ proxy: DEFAULT_PORTS.proxy, admin: 9000, backend: DEFAULT_PORTS.backend });
  });

  it('names the path, the expectation and the value for a number out of range', () => {
    expect(problems(withChange((c) => (c.backends = { count: 0 })))).toEqual(['backends.count: expected an integer >= 1, got 0']);
    expect(problems(withChange((c) => (c.proxy.port = 70000)))).toEqual(['proxy.port: expected an integer <= 65535, got 70000']);
  });

  it('reports a wrong type', () => {
    expect(problems(withChange((c) => (c.backends = { count: 'three' })))).toEqual(['backends.count: expected a number, got "three"']);
    expect(problems(withChange((c) => (c.backends = { count: 1.5 })))).toEqual(['backends.count: expected an integer, got 1.5']);
  });

  it('reports a missing required key', () => {
    expect(problems(withChange((c) => delete c.proxy.adminTokenSha256))).toEqual([
      'proxy.adminTokenSha256: is required (expected a string)',
    ]);
  });

  it('reports a value outside an enumeration', () => {
    expect(problems(withChange((c) => (c.runtime = 'docker')))).toEqual(['runtime: expected one of "host", "qemu", "kraft", got "docker"']);
  });

  it('reports misspelt keys instead of ignoring them', () => {
    expect(problems(withChange((c) => (c.proxy.algoritm = 'p2c')))).toEqual([
      'proxy: unknown key "algoritm" (check the spelling; uproxy.schema.json lists every key)',
    ]);
  });

  it('reports malformed strings with what the format is', () => {
    expect(problems(withChange((c) => (c.proxy.tokens[0].sha256 = 'secret')))).toEqual([
      'proxy.tokens.0.sha256: must be a SHA-256 digest: 64 lowercase hex digits, got "secret"',
    ]);
    expect(problems(withChange((c) => (c.network = { subnet: '300.1.2.0/24' })))[0]).toMatch(/^network\.subnet: must have octets of at most 255/);
    expect(problems(withChange((c) => (c.name = 'My Fleet')))[0]).toMatch(/^name: must start with a letter/);
  });

  it('reports an empty token list, duplicate token names and clashing ports', () => {
    expect(problems(withChange((c) => (c.proxy.tokens = [])))).toEqual(['proxy.tokens: expected a list of >= 1 item, got []']);
    expect(problems(withChange((c) => c.proxy.tokens.push({ name: 'default', sha256: HASH })))).toEqual([
      'proxy.tokens.1.name: duplicate token name "default", got "default"',
    ]);
    expect(problems(withChange((c) => Object.assign(c.proxy, { port: 9000, adminPort: 9000 })))).toEqual([
      'proxy.adminPort: must differ from proxy.port (both are 9000), got 9000',
    ]);
  });

  it('leaves TLS off by default and takes local-ca with extra names, or files with both paths', () => {
    expect(parseConfig(JSON.stringify(minimal), 'uproxy.json').proxy.tls).toEqual({ mode: 'off' });
    const localCa = parseConfig(JSON.stringify(withChange((c) => (c.proxy.tls = { mode: 'local-ca', names: ['proxy.example.test', '*.apps.test', '10.0.0.5'] }))), 'uproxy.json');
    expect(localCa.proxy.tls).toEqual({ mode: 'local-ca', names: ['proxy.example.test', '*.apps.test', '10.0.0.5'] });
    const files = parseConfig(JSON.stringify(withChange((c) => (c.proxy.tls = { mode: 'files', certFile: 'certs/chain.pem', keyFile: 'certs/key.pem' }))), 'uproxy.json');
    expect(files.proxy.tls).toMatchObject({ mode: 'files', certFile: 'certs/chain.pem', keyFile: 'certs/key.pem' });
  });

  it('names each TLS setting that does not fit the mode', () => {
    expect(problems(withChange((c) => (c.proxy.tls = { mode: 'files' })))).toEqual([
      'proxy.tls.certFile: is required when mode is "files"',
      'proxy.tls.keyFile: is required when mode is "files"',
    ]);
    expect(problems(withChange((c) => (c.proxy.tls = { mode: 'local-ca', certFile: 'chain.pem' })))).toEqual([
      'proxy.tls.certFile: is only used when mode is "files" (mode is "local-ca"), got "chain.pem"',
    ]);
    expect(problems(withChange((c) => (c.proxy.tls = { mode: 'files', certFile: 'c.pem', keyFile: 'k.pem', names: ['a.test'] })))).toEqual([
      'proxy.tls.names: is only used when mode is "local-ca" (mode is "files"), got ["a.test"]',
    ]);
    expect(problems(withChange((c) => (c.proxy.tls = { mode: 'tofu' }))))
      .toEqual([expect.stringMatching(/^proxy\.tls\.mode: expected one of "off", "local-ca", "files", "acme"/)]);
    expect(problems(withChange((c) => (c.proxy.tls = { mode: 'local-ca', names: ['bad name'] })))[0]).toMatch(/^proxy\.tls\.names\.0: must be a DNS name/);
    expect(problems(withChange((c) => (c.proxy.tls = { mode: 'local-ca', names: ['10.0.0.256', '10.0.0'] })))).toEqual([
      'proxy.tls.names.0: must be an IPv4 address with 4 octets of at most 255, got "10.0.0.256"',
      'proxy.tls.names.1: must be an IPv4 address with 4 octets of at most 255, got "10.0.0"',
    ]);
  });

  it('takes ACME with an email and domains, Let\'s Encrypt and http-01 by default, on a published proxy', () => {
    const acme = parseConfig(JSON.stringify(withChange((c) => {
      c.proxy.publish = '0.0.0.0:443';
      c.proxy.tls = { mode: 'acme', acme: { email: 'ops@example.com', domains: ['fleet.example.com'] } };
    })), 'uproxy.json');
    expect(acme.proxy.tls.acme).toEqual({
      email: 'ops@example.com',
      domains: ['fleet.example.com'],
      directoryUrl: 'https://acme-v02.api.letsencrypt.org/directory',
      challenge: 'http-01',
    });
  });

  it('names what is wrong with an ACME setting', () => {
    const published = (tls: unknown) => withChange((c) => {
      c.proxy.publish = '0.0.0.0:443';
      c.proxy.tls = tls;
    });
    expect(problems(published({ mode: 'acme' }))).toEqual([
      'proxy.tls.acme: is required when mode is "acme": {"email": "you@example.com", "domains": ["fleet.example.com"]}',
    ]);
    expect(problems(published({ mode: 'local-ca', acme: { email: 'a@b.test', domains: ['a.b.test'] } }))[0]).toMatch(/^proxy\.tls\.acme: is only used when mode is "acme" \(mode is "local-ca"\)/);
    expect(problems(published({ mode: 'acme', acme: { email: 'nobody', domains: ['*.example.com', '10.0.0.1', 'localhost'], challenge: 'dns-01', directoryUrl: 'ftp://x' } }))).toEqual([
      'proxy.tls.acme.email: must be an email address, got "nobody"',
      expect.stringMatching(/^proxy\.tls\.acme\.domains\.0: must be a DNS name with a dot, such as fleet\.example\.com \(no wildcard/),
      expect.stringMatching(/^proxy\.tls\.acme\.domains\.1: must be a DNS name with a dot/),
      expect.stringMatching(/^proxy\.tls\.acme\.domains\.2: must be a DNS name with a dot/),
      expect.stringMatching(/^proxy\.tls\.acme\.directoryUrl: must be the http\(s\) URL of an RFC 8555 directory/),
      expect.stringMatching(/^proxy\.tls\.acme\.challenge: expected one of "http-01", "tls-alpn-01"/),
    ]);
    expect(problems(published({ mode: 'acme', acme: { email: 'a@b.test', domains: ['a.b.test', 'A.b.test'] } }))[0]).toMatch(/^proxy\.tls\.acme\.domains: must not name a domain twice/);
    // The CA must reach the proxy.
    expect(problems(withChange((c) => (c.proxy.tls = { mode: 'acme', acme: { email: 'a@b.test', domains: ['a.b.test'] } })))).toEqual([
      'proxy.publish: is required with tls mode "acme": the CA must reach the proxy at your domain, so publish it, usually as "0.0.0.0:443"',
    ]);
  });

  it('takes publishHttp only with HTTPS, on another address than publish', () => {
    expect(problems(withChange((c) => (c.proxy.publishHttp = '0.0.0.0:80')))).toEqual([
      'proxy.publishHttp: redirects to HTTPS, which tls mode "off" does not serve: set proxy.tls.mode, or remove publishHttp, got "0.0.0.0:80"',
    ]);
    expect(problems(withChange((c) => Object.assign(c.proxy, { tls: { mode: 'local-ca' }, publish: '0.0.0.0:443', publishHttp: '0.0.0.0:443' })))).toEqual([
      'proxy.publishHttp: must differ from proxy.publish (both are 0.0.0.0:443), got "0.0.0.0:443"',
    ]);
  });

  it('lists every problem of a file at once', () => {
    const found = problems({ name: 'demo', runtime: 'vm', backends: { count: -1 }, extra: true });
    expect(found).toHaveLength(4);
    expect(found).toContain('runtime: expected one of "host", "qemu", "kraft", got "vm"');
    expect(found).toContain('backends.count: expected an integer >= 1, got -1');
    expect(found).toContain('proxy: is required (expected an object)');
    expect(found.some((p) => p.startsWith('(top level): unknown key "extra"'))).toBe(true);
  });

  it('points at the line and column of a JSON syntax error', () => {
    expect(() => parseConfig('{\n  "name": "demo",\n  oops\n}', 'uproxy.json')).toThrow(/^uproxy\.json:3:3: not valid JSON: Expected double-quoted property name$/);
  });
});
