import { describe, expect, it } from 'vitest';
import { UserError } from '../../cli/errors.js';
import { explainAcmeFailure, retryAfterTime, type FailureContext } from '../../cli/tls/acme-failure.js';
import { acmeBackoffUntil, acmeRenewalReason, type AcmeIssued } from '../../cli/tls/renewal.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';
const wanted = { directoryUrl: DIRECTORY, domains: ['fleet.example.com'] };
const issued: AcmeIssued = { directoryUrl: DIRECTORY, domains: ['fleet.example.com'], serial: 'AB01' };
const certificate = (days: number) => ({ notBefore: T0, notAfter: T0 + days * DAY, names: ['fleet.example.com'], signedByCa: false, serial: 'AB01' });

describe('acmeRenewalReason', () => {
  it('renews a 90-day certificate with 30 days left, and a short-lived one with a third of its life left', () => {
    expect(acmeRenewalReason(certificate(90), issued, wanted, T0 + 59 * DAY)).toBeNull();
    expect(acmeRenewalReason(certificate(90), issued, wanted, T0 + 60 * DAY)).toMatch(/inside its renewal window/);
    // Let's Encrypt's 6-day certificates: due at 2 days left, not from the start (30 days would be).
    expect(acmeRenewalReason(certificate(6), issued, wanted, T0 + 3 * DAY)).toBeNull();
    expect(acmeRenewalReason(certificate(6), issued, wanted, T0 + 4 * DAY)).toMatch(/renewal window/);
    // A year-long one still renews 30 days ahead, not 4 months.
    expect(acmeRenewalReason(certificate(365), issued, wanted, T0 + 300 * DAY)).toBeNull();
    expect(acmeRenewalReason(certificate(365), issued, wanted, T0 + 336 * DAY)).toMatch(/renewal window/);
    expect(acmeRenewalReason(certificate(90), issued, wanted, T0 + 91 * DAY)).toMatch(/expired/);
  });

  it('asks the CA when the proxy has none of its certificates, or another CA or other names are configured', () => {
    expect(acmeRenewalReason(null, null, wanted, T0)).toMatch(/no proxy certificate/);
    // The temporary certificate from the project CA (its serial is not the one recorded).
    expect(acmeRenewalReason({ ...certificate(30), serial: 'CAFE' }, issued, wanted, T0)).toMatch(/temporary certificate/);
    expect(acmeRenewalReason(certificate(90), null, wanted, T0)).toMatch(/temporary certificate/);
    expect(acmeRenewalReason(certificate(90), issued, { ...wanted, directoryUrl: 'https://acme-staging-v02.api.letsencrypt.org/directory' }, T0)).toMatch(/directoryUrl changed/);
    expect(acmeRenewalReason(certificate(90), issued, { ...wanted, domains: ['fleet.example.com', 'www.example.com'] }, T0)).toMatch(/are not proxy\.tls\.acme\.domains/);
    // Names compare without case, as DNS does.
    expect(acmeRenewalReason(certificate(90), issued, { ...wanted, domains: ['Fleet.Example.com'] }, T0)).toBeNull();
  });
});

describe('acmeBackoffUntil', () => {
  const at = new Date(T0).toISOString();
  it('waits 5 minutes after a failure, doubling to a day', () => {
    expect(acmeBackoffUntil({ at, count: 1, message: '' })).toBe(T0 + 5 * 60_000);
    expect(acmeBackoffUntil({ at, count: 3, message: '' })).toBe(T0 + 20 * 60_000);
    expect(acmeBackoffUntil({ at, count: 40, message: '' })).toBe(T0 + DAY);
  });

  it("waits for the CA's Retry-After when it is later", () => {
    const retryAfter = new Date(T0 + 3 * 3_600_000).toISOString();
    expect(acmeBackoffUntil({ at, count: 1, message: '', retryAfter, rateLimited: true })).toBe(T0 + 3 * 3_600_000);
  });
});

describe('explainAcmeFailure', () => {
  const context: FailureContext = {
    directoryUrl: DIRECTORY,
    url: `${DIRECTORY.replace('/directory', '')}/acme/chall/1`,
    challenge: 'http-01',
    listener: { key: 'proxy.publishHttp', address: '0.0.0.0:80', port: 80 },
    resolved: [{ domain: 'fleet.example.com', addresses: ['203.0.113.7'] }, { domain: 'www.example.com', addresses: [] }],
  };
  const problem = (type: string, detail: string, retryAfter?: string) => ({ type: `urn:ietf:params:acme:error:${type}`, detail, ...(retryAfter ? { retryAfter } : {}) });

  it('says the port must be reachable from outside when the CA cannot connect, with what the names resolve to here', () => {
    const explained = explainAcmeFailure(new Error('x'), problem('connection', '203.0.113.7: Fetching http://fleet.example.com/.well-known/acme-challenge/t: Connection refused'), context);
    expect(explained.message).toMatch(/^the CA could not reach the proxy: .*Connection refused\. The CA connects to port 80 of each domain \(http-01; proxy\.publishHttp is 0\.0\.0\.0:80\): .*open port 80 to the internet/);
    expect(explained.details).toEqual(['fleet.example.com resolves here to 203.0.113.7', 'www.example.com does not resolve here']);
    expect(explained.rateLimited).toBe(false);
  });

  it('asks for an A record when the CA cannot resolve a name', () => {
    expect(explainAcmeFailure(new Error('x'), problem('dns', 'NXDOMAIN looking up A for www.example.com'), context).message).toMatch(/could not look up a domain: NXDOMAIN .*A record/);
  });

  it('keeps the certificate serving and the time to try again when rate-limited', () => {
    const now = T0;
    const explained = explainAcmeFailure(new Error('x'), problem('rateLimited', 'too many certificates already issued', '3600'), context, now);
    expect(explained).toMatchObject({ rateLimited: true, retryAfter: new Date(T0 + 3_600_000).toISOString() });
    expect(explained.message).toMatch(/rate-limited .*keeps serving its current certificate; uproxy asks again after 2026-01-01T01:00:00.000Z/);
  });

  it('names the setting to change for refused names, contacts and CAA records', () => {
    expect(explainAcmeFailure(new Error('x'), problem('rejectedIdentifier', 'forbidden name'), context).message).toMatch(/Change proxy\.tls\.acme\.domains/);
    expect(explainAcmeFailure(new Error('x'), problem('invalidContact', 'bad domain'), context).message).toMatch(/Change proxy\.tls\.acme\.email/);
    expect(explainAcmeFailure(new Error('x'), problem('caa', 'CAA record forbids'), context).message).toMatch(/CAA record that allows it/);
  });

  it('passes its own errors through, and says when the connection to the CA was lost', () => {
    expect(explainAcmeFailure(new UserError('the CA offers no tls-alpn-01 challenge'), null, context).message).toBe('the CA offers no tls-alpn-01 challenge');
    expect(explainAcmeFailure(new TypeError("Cannot read properties of undefined (reading 'config')"), null, context).message).toMatch(/^lost the connection to the CA at https:\/\/acme-v02\.api\.letsencrypt\.org\/acme\/chall\/1/);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    expect(retryAfterTime('120', T0)).toBe(new Date(T0 + 120_000).toISOString());
    expect(retryAfterTime('Thu, 01 Jan 2026 06:00:00 GMT', T0)).toBe('2026-01-01T06:00:00.000Z');
    expect(retryAfterTime('soon', T0)).toBeUndefined();
    expect(retryAfterTime(undefined, T0)).toBeUndefined();
  });
});
