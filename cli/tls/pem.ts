/**
 * The parts of a PEM bundle as the proxy reads it (chain, leaf first, then the key), so the
 * public part can travel where the key must not: a renewal sent to a VM guest's admin API
 * carries only the chain, and a guest is restarted only when its key changes.
 */

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PRIVATE_KEY = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]+?-----END \1PRIVATE KEY-----/;

/** The certificates, leaf first, one PEM block per line group; '' when there are none. */
export function certificateChain(pem: string): string {
  return (pem.match(CERTIFICATE) ?? []).map((block) => `${block}\n`).join('');
}

/** The private key block, or null when the bundle has none. */
export function privateKey(pem: string): string | null {
  return PRIVATE_KEY.exec(pem)?.[0] ?? null;
}
