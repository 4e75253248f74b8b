/**
 * When the proxy's certificate must be issued again: pure, so the rule is tested directly and
 * `up` only reads files and the clock to feed it.
 */

/** What the rule needs to know of the certificate the proxy has now (times in ms since the epoch). */
export interface CertificateFacts {
  notBefore: number;
  notAfter: number;
  /** Its subjectAltName entries (DNS names and IP addresses), as text. */
  names: readonly string[];
  /** Signed by the project CA of today (false after the CA was made again). */
  signedByCa: boolean;
}

/**
 * Short-lived, as ACME CAs do: a leaked key is good for weeks, not years, and `up` renews it
 * long before it ends (see renewalReason).
 */
export const PROXY_CERTIFICATE_DAYS = 30;

/**
 * The names every local-ca certificate covers (what the host runtime's curl line uses), the
 * addresses the runtime serves the proxy at (vm-plan.ts proxyAddresses), then the configured ones.
 */
export function proxyCertificateNames(extra: readonly string[] = [], addresses: readonly string[] = []): string[] {
  return [...new Set(['localhost', '127.0.0.1', ...addresses, ...extra])];
}

/**
 * Why a new certificate is due now, or null while the current one is good: none yet, other
 * names wanted, not from the project CA, or a third of its lifetime (or less) left, which
 * leaves 10 of 30 days for an `up` to come by, as certbot's and Caddy's renewal windows do.
 */
export function renewalReason(current: CertificateFacts | null, wanted: readonly string[], now: number): string | null {
  if (current === null) return 'there is no proxy certificate yet';
  const had = new Set(current.names);
  if (had.size !== new Set(wanted).size || wanted.some((n) => !had.has(n))) {
    return `its names (${current.names.join(', ')}) are not the wanted ones (${wanted.join(', ')})`;
  }
  if (!current.signedByCa) return 'it is not signed by the project CA';
  if (now < current.notBefore) return 'it is not valid yet (the clock went back)';
  if (now >= current.notAfter) return 'it has expired';
  const lifetime = current.notAfter - current.notBefore;
  if (current.notAfter - now <= lifetime / 3) return `a third of its lifetime or less is left (it expires ${new Date(current.notAfter).toISOString()})`;
  return null;
}

/** What `.uproxy/acme/state.json` records of the certificate an ACME CA issued into proxy.pem. */
export interface AcmeIssued {
  directoryUrl: string;
  domains: readonly string[];
  /** Upper-case hex, as node:crypto and the proxy's admin API print it: tells this certificate from a later bootstrap one. */
  serial: string;
}

const DAY_MS = 86_400_000;
/** Certbot's window for 90-day certificates; shorter lives are renewed at a third left, as Caddy does. */
const ACME_RENEW_BEFORE_MS = 30 * DAY_MS;

/**
 * Why the proxy needs a (new) certificate from the ACME CA, or null while the one it has is
 * good: none from the CA yet (the temporary one from the project CA, or another mode's), another
 * CA or other names configured, or 30 days or a third of its life left, whichever comes later
 * in its life (a 90-day certificate: 30 days; a 6-day one: 2 days).
 */
export function acmeRenewalReason(
  current: (CertificateFacts & { serial?: string }) | null,
  issued: AcmeIssued | null,
  wanted: { directoryUrl: string; domains: readonly string[] },
  now: number,
): string | null {
  if (current === null) return 'there is no proxy certificate yet';
  if (issued === null || issued.serial !== current.serial) return 'the proxy serves a temporary certificate from the project CA until the ACME CA issues one';
  if (issued.directoryUrl !== wanted.directoryUrl) return `proxy.tls.acme.directoryUrl changed (the certificate came from ${issued.directoryUrl})`;
  const had = new Set(current.names.map((n) => n.toLowerCase()));
  const want = new Set(wanted.domains.map((n) => n.toLowerCase()));
  if (had.size !== want.size || [...want].some((n) => !had.has(n))) {
    return `its names (${current.names.join(', ')}) are not proxy.tls.acme.domains (${wanted.domains.join(', ')})`;
  }
  if (now < current.notBefore) return 'it is not valid yet (the clock went back)';
  if (now >= current.notAfter) return 'it has expired';
  const window = Math.min(ACME_RENEW_BEFORE_MS, (current.notAfter - current.notBefore) / 3);
  if (current.notAfter - now <= window) return `it expires ${new Date(current.notAfter).toISOString()}, inside its renewal window (30 days or a third of its life)`;
  return null;
}

/** A failed ACME attempt, as `.uproxy/acme/state.json` keeps it until one succeeds. */
export interface AcmeFailure {
  /** RFC 3339. */
  at: string;
  /** Failed attempts in a row. */
  count: number;
  message: string;
  /** The CA's Retry-After of a rate limit (RFC 3339), when it gave one. */
  retryAfter?: string;
  rateLimited?: boolean;
}

const FIRST_BACKOFF_MS = 5 * 60_000;

/**
 * Until when automatic attempts (`up`, the renewal service) leave the CA alone after failures:
 * 5 minutes doubling to a day, or the CA's Retry-After when later. Let's Encrypt allows 5
 * failed validations per name an hour; a fleet that `up` runs in a loop must not spend them.
 */
export function acmeBackoffUntil(failure: AcmeFailure): number {
  const backoff = Math.min(DAY_MS, FIRST_BACKOFF_MS * 2 ** Math.min(failure.count - 1, 20));
  const retryAfter = failure.retryAfter === undefined ? 0 : Date.parse(failure.retryAfter);
  return Math.max(Date.parse(failure.at) + backoff, retryAfter);
}
