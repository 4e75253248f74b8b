import { describe, expect, it } from 'vitest';
import { toShell } from '../../cli/fleet/argv.js';
import { parseRegistry, pushFailure, skopeoPushCommand } from '../../cli/oci/skopeo.js';

describe('parseRegistry', () => {
  it('takes a host with an optional port and repository path', () => {
    expect(parseRegistry('127.0.0.1:5000/uproxy')).toEqual({ host: '127.0.0.1:5000', prefix: '127.0.0.1:5000/uproxy' });
    expect(parseRegistry('ghcr.io/you/fleets/')).toEqual({ host: 'ghcr.io', prefix: 'ghcr.io/you/fleets' });
    expect(parseRegistry('registry.local')).toEqual({ host: 'registry.local', prefix: 'registry.local' });
    expect(parseRegistry('registry.local/a_b/c-d.e')).not.toBeNull();
  });

  it('refuses what is no repository of a Docker reference', () => {
    for (const bad of ['', 'https://ghcr.io/you', 'ghcr.io/You', 'ghcr.io/you:latest', 'ghcr.io//you', '-x.io/a', 'ghcr.io/you/-a']) expect(parseRegistry(bad)).toBeNull();
  });
});

describe('skopeoPushCommand', () => {
  const push = { layout: '/p/.uproxy/oci/proxy', repository: '127.0.0.1:5000/uproxy/demo-proxy', digestFile: '/tmp/d' };

  it('copies the layout as it is, tagged latest', () => {
    expect(toShell(skopeoPushCommand({ ...push, insecure: false }))).toBe(
      'skopeo copy --preserve-digests --digestfile /tmp/d oci:/p/.uproxy/oci/proxy:latest docker://127.0.0.1:5000/uproxy/demo-proxy:latest',
    );
  });

  it('turns TLS verification off in one word, as a boolean flag takes false', () => {
    expect(skopeoPushCommand({ ...push, insecure: true }).args).toContain('--dest-tls-verify=false');
    expect(skopeoPushCommand({ ...push, insecure: true }).args).not.toContain('false');
  });
});

describe('pushFailure', () => {
  const registry = { host: '127.0.0.1:5000', prefix: '127.0.0.1:5000/uproxy' };
  // What skopeo 1.9.3 printed against docker-registry 2.8.2 in each case.
  const said = (what: string) => `time="2026-12-03T12:38:10Z" level=fatal msg="trying to reuse blob sha256:38b0 at destination: ${what}"`;

  it('points a plain-HTTP registry at --insecure', () => {
    expect(pushFailure(said('pinging container registry 127.0.0.1:5000: Get \\"https://127.0.0.1:5000/v2/\\": http: server gave HTTP response to HTTPS client'), registry, false))
      .toMatch(/speaks plain HTTP, not HTTPS: .* pass --insecure/);
  });

  it('says where credentials go, never on the command line', () => {
    const message = pushFailure(said('checking whether a blob sha256:38b0 exists in 127.0.0.1:5000/uproxy/demo-proxy: unauthorized: authentication required'), registry, true);
    expect(message).toContain('`skopeo login --tls-verify=false 127.0.0.1:5000`');
    expect(message).toContain('REGISTRY_AUTH_FILE');
  });

  it('names an unreachable registry', () => {
    expect(pushFailure(said('pinging container registry 127.0.0.1:5000: Get \\"http://127.0.0.1:5000/v2/\\": dial tcp 127.0.0.1:5000: connect: connection refused'), registry, true))
      .toBe('cannot reach the registry 127.0.0.1:5000: check the address and port in --registry and that the registry runs');
  });

  it('says how to trust a registry\'s certificate', () => {
    expect(pushFailure(said('pinging container registry 127.0.0.1:5000: Get \\"https://127.0.0.1:5000/v2/\\": x509: certificate signed by unknown authority'), registry, false))
      .toMatch(/not trusted here: put its CA in \/etc\/containers\/certs\.d\/127\.0\.0\.1:5000\/ca\.crt/);
  });
});
