import type { FleetState } from '../fleet/state.js';
import { request as httpRequest } from 'node:http';
import { proxyStats, proxyTokens, tlsCertificate, tlsCertificates, type ProxyStats, type ProxyToken, type TlsCertificate } from './schema.js';

/** Where a fleet's admin API listens and the bearer token it wants. */
export interface AdminEndpoint {
  /** e.g. `http://127.0.0.1:8081` */
  url: string;
  token: string;
}

/** A fleet's admin API, from its state (where the proxy's admin listener is) and the admin token. */
export function adminEndpointOf(state: Pick<FleetState, 'proxy'>, token: string): AdminEndpoint {
  return { url: `http://${state.proxy.admin}`, token };
}

/** The admin API could not be reached, refused us, or answered something we cannot read. */
export class AdminApiError extends Error {
  override name = 'AdminApiError';
  constructor(
    message: string,
    /** The HTTP status when the API answered with an error, so callers can tell 404 from 401. */
    readonly status?: number,
  ) {
    super(message);
  }
}

const DEFAULT_TIMEOUT_MS = 2000;

/** `GET /stats`, validated against the schema of proxy/README.md. */
export async function fetchStats(endpoint: AdminEndpoint, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ProxyStats> {
  const body = await adminRequest(endpoint, 'GET', '/stats', timeoutMs);
  const parsed = proxyStats.safeParse(body);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new AdminApiError(`${endpoint.url}/stats answered JSON that does not match the stats schema: ${problems}`);
  }
  return parsed.data;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Calls an admin route and returns its parsed JSON body (or null when it has none). */
export async function adminRequest(
  endpoint: AdminEndpoint,
  method: Method,
  path: string,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  json?: unknown,
): Promise<unknown> {
  return call(endpoint, method, path, timeoutMs, json === undefined ? undefined : { type: 'application/json', text: JSON.stringify(json) });
}

/**
 * One admin call with an optional body. Error messages quote the proxy's answer, never the
 * body sent: it may hold a private key.
 */
async function call(endpoint: AdminEndpoint, method: Method, path: string, timeoutMs: number, body?: { type: string; text: string }): Promise<unknown> {
  const url = endpoint.url + path;
  let status: number;
  let text: string;
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${endpoint.token}` };
    if (body !== undefined) headers['content-type'] = body.type;
    ({ status, text } = await send(url, method, headers, body?.text, timeoutMs));
  } catch (error) {
    throw new AdminApiError(`cannot reach the proxy's admin API at ${url}: ${(error as Error).message}`);
  }
  if (status === 401) {
    throw new AdminApiError(`the proxy's admin API at ${url} refused the admin token (401): check .uproxy/admin-token`, 401);
  }
  if (status >= 400) {
    throw new AdminApiError(`${method} ${url} answered ${status}: ${text.slice(0, 200)}`, status);
  }
  if (text.length === 0) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AdminApiError(`${method} ${url} answered something that is not JSON: ${text.slice(0, 200)}`);
  }
}

/**
 * One request through node:http rather than undici: `ps` must answer in < 150 ms, and
 * importing undici and making its first request costs ~120 ms (it compiles llhttp's
 * WebAssembly, and the process then waits at exit for V8 to finish optimising it), where
 * node:http and its built-in parser cost ~25 ms. `timeoutMs` bounds each wait for the proxy:
 * for the connection and the headers, then between parts of the body.
 */
function send(url: string, method: Method, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) } });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.end(body);
  });
}

/**
 * Drains a backend (the proxy stops sending it new requests) or undrains it, through
 * `POST /backends/NAME/drain|undrain`. Returns false when this proxy has no such route (404).
 */
export async function setBackendDrain(endpoint: AdminEndpoint, backend: string, drain: boolean): Promise<boolean> {
  try {
    await adminRequest(endpoint, 'POST', `/backends/${encodeURIComponent(backend)}/${drain ? 'drain' : 'undrain'}`);
    return true;
  } catch (error) {
    if (error instanceof AdminApiError && error.status === 404) return false;
    throw error;
  }
}

/**
 * Asks the proxy to drain and exit (`POST /shutdown`): it stops accepting, finishes what is in
 * flight, closes every client and pooled upstream connection with a FIN and exits 0, as on
 * SIGTERM, which a VM guest cannot be sent. Resolves once the proxy accepted (202); false when
 * this proxy has no such route (404) and must be stopped some other way.
 */
export async function requestShutdown(endpoint: AdminEndpoint, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<boolean> {
  try {
    await adminRequest(endpoint, 'POST', '/shutdown', timeoutMs);
    return true;
  } catch (error) {
    if (error instanceof AdminApiError && error.status === 404) return false;
    throw error;
  }
}

/** `GET /tls/certificates`: the certificates the running proxy serves, by index. */
export async function listCertificates(endpoint: AdminEndpoint, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<TlsCertificate[]> {
  const parsed = tlsCertificates.safeParse(await adminRequest(endpoint, 'GET', '/tls/certificates', timeoutMs));
  if (!parsed.success) throw new AdminApiError(`${endpoint.url}/tls/certificates answered JSON that is not a certificate list`);
  return parsed.data;
}

/**
 * `PUT /tls/certificates/N` with the PEM chain (leaf first) and its key: new connections get it
 * at once, open ones keep theirs, and the proxy is not restarted. Returns the certificate as
 * the proxy now lists it.
 */
export async function putCertificate(endpoint: AdminEndpoint, index: number, pem: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<TlsCertificate> {
  const answer = await call(endpoint, 'PUT', `/tls/certificates/${index}`, timeoutMs, { type: 'application/x-pem-file', text: pem });
  const parsed = tlsCertificate.safeParse(answer);
  if (!parsed.success) throw new AdminApiError(`PUT ${endpoint.url}/tls/certificates/${index} answered something that is not a certificate`);
  return parsed.data;
}

/** `GET /tokens`: the running proxy's client tokens with their use since it started (never a hash). */
export async function listTokens(endpoint: AdminEndpoint, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ProxyToken[]> {
  const parsed = proxyTokens.safeParse(await adminRequest(endpoint, 'GET', '/tokens', timeoutMs));
  if (!parsed.success) throw new AdminApiError(`${endpoint.url}/tokens answered JSON that is not a token list`);
  return parsed.data;
}

/**
 * `PUT /tokens/NAME` with the token's SHA-256 (the token itself never leaves this process) and
 * its expiry (Unix seconds; none: never): new requests see it at once, nothing restarts.
 */
export async function putToken(endpoint: AdminEndpoint, token: { name: string; sha256: string; expires?: number }, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  await adminRequest(endpoint, 'PUT', `/tokens/${encodeURIComponent(token.name)}`, timeoutMs, { sha256: token.sha256, expires: token.expires ?? 0 });
}

/** `DELETE /tokens/NAME`: the next request with it gets 401. False when the proxy has no such token (404). */
export async function deleteToken(endpoint: AdminEndpoint, name: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<boolean> {
  try {
    await adminRequest(endpoint, 'DELETE', `/tokens/${encodeURIComponent(name)}`, timeoutMs);
    return true;
  } catch (error) {
    if (error instanceof AdminApiError && error.status === 404) return false;
    throw error;
  }
}

/** The ACME challenges the proxy answers for the CLI (`/acme/<type>/<key>`): an http-01 token, or a domain for tls-alpn-01. */
export type AcmeChallengeRoute = { type: 'http-01'; token: string } | { type: 'tls-alpn-01'; domain: string };

function acmeRoute(route: AcmeChallengeRoute): string {
  return `/acme/${route.type}/${encodeURIComponent(route.type === 'http-01' ? route.token : route.domain)}`;
}

/**
 * `PUT /acme/http-01/TOKEN` with the key authorization (served on the plain listener at
 * /.well-known/acme-challenge/TOKEN), or `PUT /acme/tls-alpn-01/DOMAIN` with the challenge
 * certificate and its throwaway key (served to ALPN acme-tls/1 clients naming DOMAIN).
 */
export async function putAcmeChallenge(endpoint: AdminEndpoint, route: AcmeChallengeRoute, body: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  await call(endpoint, 'PUT', acmeRoute(route), timeoutMs, { type: route.type === 'http-01' ? 'text/plain' : 'application/x-pem-file', text: body });
}

/** Takes a challenge back once the CA has decided; false when the proxy had none such (404). */
export async function deleteAcmeChallenge(endpoint: AdminEndpoint, route: AcmeChallengeRoute, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<boolean> {
  try {
    await call(endpoint, 'DELETE', acmeRoute(route), timeoutMs);
    return true;
  } catch (error) {
    if (error instanceof AdminApiError && error.status === 404) return false;
    throw error;
  }
}
