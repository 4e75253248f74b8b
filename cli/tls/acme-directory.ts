import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { UserError } from '../errors.js';

/**
 * Reads the ACME directory before anything else, so that the common failures of a first setup
 * (a mistyped URL, no way out of this host, a test CA whose root Node does not trust) get a
 * message that says which: past this point acme-client reports a lost connection only as a
 * TypeError of its own.
 */

const TIMEOUT_MS = 15_000;

/** Node's codes for a server certificate it does not trust (tls.TLSSocket authorizationError). */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export async function checkDirectory(url: string): Promise<void> {
  let answer: { status: number; body: string };
  try {
    answer = await get(url);
  } catch (error) {
    throw new UserError(unreachable(url, error as NodeJS.ErrnoException));
  }
  let directory: Record<string, unknown> | null = null;
  try {
    directory = JSON.parse(answer.body) as Record<string, unknown>;
  } catch {
    directory = null;
  }
  if (answer.status !== 200 || typeof directory?.newNonce !== 'string' || typeof directory.newOrder !== 'string' || typeof directory.newAccount !== 'string') {
    throw new UserError(`${url} answered ${answer.status} with no ACME directory (newNonce, newAccount, newOrder): check proxy.tls.acme.directoryUrl; Let's Encrypt's is https://acme-v02.api.letsencrypt.org/directory`);
  }
}

function unreachable(url: string, error: NodeJS.ErrnoException): string {
  const host = new URL(url).host;
  const code = error.code ?? error.message;
  if (code && UNTRUSTED.has(code)) {
    return `the ACME directory ${url} presents a certificate this host does not trust (${code}): for a private or test CA, give Node its root with NODE_EXTRA_CA_CERTS=/path/to/root.pem`;
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot reach the ACME directory ${url}: ${host} does not resolve here (${code}); check proxy.tls.acme.directoryUrl and this host's DNS`;
  return `cannot reach the ACME directory ${url} (${error.message}): check proxy.tls.acme.directoryUrl, and that this host can open connections to ${host}`;
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { method: 'GET', headers: { accept: 'application/json' } });
    request.setTimeout(TIMEOUT_MS, () => request.destroy(Object.assign(new Error(`no answer within ${TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    request.on('error', reject);
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        // A directory is a few hundred bytes; anything huge is not one.
        if (size > 1 << 20) request.destroy(new Error('the answer is larger than 1 MiB'));
        else chunks.push(chunk);
      });
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.end();
  });
}
