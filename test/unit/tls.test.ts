import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tlsPaths } from '../../cli/files.js';
import { certificateFacts, ensureCa, issueProxyCertificate } from '../../cli/tls/local-ca.js';
import { proxyCertificateNames, renewalReason, type CertificateFacts } from '../../cli/tls/renewal.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const names = proxyCertificateNames();
const issued = (days = 30): CertificateFacts => ({ notBefore: T0, notAfter: T0 + days * DAY, names, signedByCa: true });

describe('renewalReason', () => {
  it('keeps a certificate with more than a third of its life left, renews it at a third', () => {
    expect(renewalReason(issued(), names, T0)).toBeNull();
    expect(renewalReason(issued(), names, T0 + 19 * DAY)).toBeNull();
    expect(renewalReason(issued(), names, T0 + 20 * DAY)).toMatch(/a third of its lifetime/);
    expect(renewalReason(issued(), names, T0 + 31 * DAY)).toMatch(/expired/);
    // The rule is relative: a 3-day certificate is due after 2 days.
    expect(renewalReason(issued(3), names, T0 + DAY)).toBeNull();
    expect(renewalReason(issued(3), names, T0 + 2 * DAY)).toMatch(/a third/);
  });

  it('renews when there is none, the names changed, another CA signed it or the clock went back', () => {
    expect(renewalReason(null, names, T0)).toMatch(/no proxy certificate/);
    expect(renewalReason(issued(), proxyCertificateNames(['proxy.example.test']), T0)).toMatch(/names/);
    expect(renewalReason({ ...issued(), names: [...names, 'old.test'] }, names, T0)).toMatch(/names/);
    expect(renewalReason({ ...issued(), signedByCa: false }, names, T0)).toMatch(/project CA/);
    expect(renewalReason(issued(), names, T0 - DAY)).toMatch(/not valid yet/);
  });

  it('always covers localhost and 127.0.0.1, without duplicates', () => {
    expect(proxyCertificateNames(['a.test', 'localhost'])).toEqual(['localhost', '127.0.0.1', 'a.test']);
  });
});

describe('the project CA', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uproxy-ca-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is made once, key mode 0600, and signs server certificates openssl verifies for their names', async () => {
    const first = await ensureCa(dir, 'demo');
    expect(first.created).toBe(true);
    const paths = tlsPaths(dir);
    expect(statSync(paths.caKey).mode & 0o777).toBe(0o600);
    expect((await ensureCa(dir, 'demo')).created).toBe(false);
    expect(readFileSync(paths.caCert, 'utf8')).toBe(readFileSync(paths.caCert, 'utf8'));

    const pem = await issueProxyCertificate(first.ca, proxyCertificateNames(['proxy.example.test']));
    const file = join(dir, 'proxy.pem');
    writeFileSync(file, pem, { mode: 0o600 });
    for (const host of ['localhost', 'proxy.example.test']) {
      execFileSync('openssl', ['verify', '-CAfile', paths.caCert, '-purpose', 'sslserver', '-verify_hostname', host, file]);
    }
    execFileSync('openssl', ['verify', '-CAfile', paths.caCert, '-verify_ip', '127.0.0.1', file]);
    expect(() => execFileSync('openssl', ['verify', '-CAfile', paths.caCert, '-verify_hostname', 'other.test', file], { stdio: 'pipe' })).toThrow();
    expect(execFileSync('openssl', ['pkey', '-in', file, '-noout', '-text'], { encoding: 'utf8' })).toMatch(/prime256v1|P-256/);

    const facts = certificateFacts(pem, readFileSync(paths.caCert, 'utf8'))!;
    expect(facts.names).toEqual(['localhost', '127.0.0.1', 'proxy.example.test']);
    expect(facts.signedByCa).toBe(true);
    expect(Math.round((facts.notAfter - facts.notBefore) / DAY)).toBe(30);
    expect(renewalReason(facts, facts.names, Date.now())).toBeNull();
    expect(certificateFacts(pem, undefined)!.signedByCa).toBe(false);
  });
});

describe('certificateLine', () => {
  it('gives the expiry in UTC and the days left', async () => {
    const { certificateLine } = await import('../../cli/core/output.js');
    const now = Date.UTC(2026, 11, 3, 8, 0);
    expect(certificateLine(now / 1000 + 30 * 86_400, now)).toBe('Certificate: expires 2027-01-02 08:00 UTC (in 30 days)');
    expect(certificateLine(now / 1000 + 3600, now)).toBe('Certificate: expires 2026-12-03 09:00 UTC (today)');
    expect(certificateLine(now / 1000 - 86_400, now)).toBe('Certificate: expires 2026-12-02 08:00 UTC (expired)');
  });
});
