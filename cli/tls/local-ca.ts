import { X509Certificate as NodeCertificate, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API
// loaded before it (the library's README asks for this polyfill).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { tlsPaths, writeFileAtomic } from '../files.js';
import { UserError } from '../errors.js';
import { PROXY_CERTIFICATE_DAYS, type CertificateFacts } from './renewal.js';

/**
 * The project's own CA (`.uproxy/tls/ca.pem`, key in `ca.key`, mode 0600) and the proxy
 * certificates it signs, the way Caddy serves HTTPS locally. Keys are ECDSA P-256 from
 * node:crypto's WebCrypto; the certificates are built by @peculiar/x509, not hand-written ASN.1.
 */

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** Long, like mkcert's: clients are told to trust it once; it signs only this project's proxy. */
const CA_DAYS = 3650;
const DAY_MS = 86_400_000;
/** Issued a little in the past, so a client whose clock is behind by a minute still accepts it. */
const BACKDATE_MS = 60_000;

export interface ProjectCa {
  certificate: x509.X509Certificate;
  key: CryptoKey;
}

/** The project CA, made now when it does not exist yet (`init`, or the first `up` with local-ca). */
export async function ensureCa(projectDir: string, fleet: string): Promise<{ ca: ProjectCa; created: boolean }> {
  const paths = tlsPaths(projectDir);
  if (existsSync(paths.caCert) && existsSync(paths.caKey)) return { ca: await loadCa(projectDir), created: false };
  const keys = await generateKeys();
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=uproxy local CA (${fleet})`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_DAYS * DAY_MS),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      // pathLength 0: it signs leaf certificates only, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  // The key first: a CA certificate on disk without its key would look usable and is not.
  writeFileAtomic(paths.caKey, await privateKeyPem(keys.privateKey), 0o600);
  writeFileAtomic(paths.caCert, certificate.toString('pem') + '\n');
  return { ca: { certificate, key: keys.privateKey }, created: true };
}

async function loadCa(projectDir: string): Promise<ProjectCa> {
  const paths = tlsPaths(projectDir);
  try {
    const certificate = new x509.X509Certificate(readFileSync(paths.caCert, 'utf8'));
    const der = x509.PemConverter.decodeFirst(readFileSync(paths.caKey, 'utf8'));
    const key = await webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
    return { certificate, key: key as CryptoKey };
  } catch (error) {
    throw new UserError(`cannot read the project CA (${paths.caCert}, ${paths.caKey}): ${(error as Error).message}; delete both and run \`uproxy up\` to make a new one (clients must then trust the new ca.pem)`);
  }
}

/**
 * A server certificate for `names` (DNS names, IPv4 addresses) signed by the CA, as the PEM the
 * proxy loads: the leaf, then its key. The CA certificate itself is not sent: clients that
 * trust it have it already. A new key each time, unless `key` (a PEM PKCS#8 P-256 key, as this
 * module writes) is to be kept. `now` and `days` are parameters so a test can issue one that is
 * due for renewal without waiting.
 */
export async function issueProxyCertificate(ca: ProjectCa, names: readonly string[], options: { now?: number; days?: number; key?: string } = {}): Promise<string> {
  const now = options.now ?? Date.now();
  const keys = options.key === undefined ? await generateKeys() : await importKeys(options.key);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${names[0] ?? 'localhost'}`,
    issuer: ca.certificate.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + (options.days ?? PROXY_CERTIFICATE_DAYS) * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: isIpv4(value) ? 'ip' : 'dns', value }))),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey),
    ],
  });
  return `${leaf.toString('pem')}\n${await privateKeyPem(keys.privateKey)}`;
}

/** The facts the renewal rule needs of the first certificate in a PEM file, or null when there is none (or it cannot be read). */
export function certificateFacts(pem: string, caPem?: string): (CertificateFacts & { serial: string; issuer: string }) | null {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!first) return null;
  try {
    const leaf = new NodeCertificate(first);
    const ca = caPem === undefined ? undefined : new NodeCertificate(caPem);
    return {
      serial: leaf.serialNumber.toUpperCase(),
      notBefore: Date.parse(leaf.validFrom),
      notAfter: Date.parse(leaf.validTo),
      names: (leaf.subjectAltName ?? '').split(', ').filter(Boolean).map((n) => n.replace(/^(DNS|IP Address):/, '')),
      signedByCa: ca !== undefined && leaf.checkIssued(ca) && leaf.verify(ca.publicKey),
      issuer: commonName(leaf.issuer),
    };
  } catch {
    return null;
  }
}

async function importKeys(pem: string): Promise<CryptoKeyPair> {
  try {
    const spki = createPublicKey(pem).export({ type: 'spki', format: 'der' });
    return {
      privateKey: (await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), KEY_ALGORITHM, true, ['sign'])) as CryptoKey,
      publicKey: (await webcrypto.subtle.importKey('spki', spki, KEY_ALGORITHM, true, ['verify'])) as CryptoKey,
    };
  } catch (error) {
    throw new UserError(`the proxy's key in .uproxy/tls/proxy.pem is not an ECDSA P-256 key uproxy can renew with (${(error as Error).message}): delete the file and run \`uproxy up\` again`);
  }
}

function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

/** 16 random bytes, the top bit clear so the DER integer is positive (RFC 5280 4.1.2.2). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

/** The CN of an X.509 name as node:crypto prints it (one `key=value` per line), else the whole name on one line. */
function commonName(name: string): string {
  return /^CN=(.*)$/m.exec(name)?.[1] ?? name.split('\n').join(', ');
}

function isIpv4(name: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name);
}
