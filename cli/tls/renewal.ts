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
