import { lookup } from 'node:dns/promises';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as acme from 'acme-client';
import type { FleetPlan } from '../fleet/plan.js';
import { plainHttpListener } from '../fleet/plan.js';
import { acmePaths, readIfExists, tlsPaths, writeFileAtomic } from '../files.js';
import { UserError } from '../errors.js';
import { deleteAcmeChallenge, putAcmeChallenge, type AcmeChallengeRoute, type AdminEndpoint } from '../stats/client.js';
import { checkDirectory } from './acme-directory.js';
import { explainAcmeFailure, type AcmeProblem } from './acme-failure.js';
import { certificateFacts } from './local-ca.js';
import { privateKey } from './pem.js';
import { syncProxyCertificate, type KeyPolicy } from './proxy-cert.js';
import { acmeBackoffUntil, acmeRenewalReason, type AcmeFailure, type AcmeIssued } from './renewal.js';

/**
 * The proxy's certificate from an ACME CA (Let's Encrypt by default), with acme-client doing
 * the protocol (account, order, finalisation, download) and the running proxy answering the
 * challenges the CLI hands it through its admin API: http-01 on its plain listener, tls-alpn-01
 * on its client port. The new chain goes into `.uproxy/tls/proxy.pem` and to the proxy through
 * the admin API, so a renewal restarts nothing. A failed attempt changes neither: the proxy
 * keeps serving what it has, and automatic attempts back off (renewal.ts acmeBackoffUntil).
 */

/** `.uproxy/acme/state.json`. */
export interface AcmeState {
  issued?: AcmeIssued & { issuer: string; notAfter: string; obtainedAt: string; challenge: string };
  failure?: AcmeFailure;
}

export type AcmeOutcome =
  | { kind: 'issued'; reason: string; serial: string; issuer: string; notAfter: number; replaced: boolean }
  | { kind: 'current' }
  | { kind: 'backing-off'; until: number; failure: AcmeFailure };

export interface AcmeOptions {
  /** Ask the CA even when the certificate is not due (`cert renew --force`), through any backoff. */
  force: boolean;
  /** `up` and the renewal service: they respect the backoff after failures; `cert renew` does not (but waits out a rate limit). */
  automatic: boolean;
}

// One attempt fails fast instead: acme-client would sleep out a CA's Retry-After (hours when
// rate-limited) inside the command, and without a timeout a silent CA would hang it.
(acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings.retryMaxAttempts = 0;
acme.axios.defaults.timeout = 30_000;

/** The last problem document the CA answered (RFC 8555 6.7), for the failure message: acme-client's errors keep only its detail. */
let lastProblem: AcmeProblem | null = null;
let lastUrl = '';
acme.axios.interceptors.request.use((config) => {
  lastUrl = config.url ?? lastUrl;
  return config;
});
acme.axios.interceptors.response.use((response) => {
  const data = response.data as { type?: unknown; detail?: unknown; error?: { type?: unknown; detail?: unknown } } | undefined;
  const problem = typeof data?.type === 'string' && data.type.startsWith('urn:ietf:params:acme:error:') ? data : data?.error;
  if (typeof problem?.type === 'string' && problem.type !== 'urn:ietf:params:acme:error:badNonce') {
    const retryAfter = response.headers['retry-after'] as string | undefined;
    lastProblem = { type: problem.type, detail: typeof problem.detail === 'string' ? problem.detail : '', ...(retryAfter ? { retryAfter } : {}) };
  }
  return response;
});

export function readAcmeState(projectDir: string): AcmeState {
  try {
    return JSON.parse(readFileSync(acmePaths(projectDir).state, 'utf8')) as AcmeState;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UserError(`cannot read ${acmePaths(projectDir).state} (${(error as Error).message}): delete it; the next \`uproxy cert renew\` asks the CA again`);
  }
}

function writeAcmeState(projectDir: string, state: AcmeState): void {
  const paths = acmePaths(projectDir);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(paths.state, `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

/** Why the proxy needs a certificate from the CA now, or null; reads files only (`up --dry-run`, `cert status`). */
export function acmeDue(plan: FleetPlan, now = Date.now()): string | null {
  const settings = plan.config.proxy.tls.acme!;
  const pem = readIfExists(tlsPaths(plan.projectDir).proxy);
  const facts = pem === null ? null : certificateFacts(pem);
  return acmeRenewalReason(facts, readAcmeState(plan.projectDir).issued ?? null, settings, now);
}

/**
 * Gets the proxy a certificate from the CA when it needs one (acmeDue) and hands it to the
 * running proxy at `endpoint`. On failure the files and the proxy are left as they were, the
 * failure is recorded for the backoff and `cert status`, and a UserError says what to fix.
 */
export async function renewAcmeCertificate(plan: FleetPlan, endpoint: AdminEndpoint, policy: KeyPolicy, options: AcmeOptions): Promise<AcmeOutcome> {
  const { projectDir } = plan;
  const due = acmeDue(plan);
  if (due === null && !options.force) return { kind: 'current' };
  const state = readAcmeState(projectDir);
  const now = Date.now();
  if (state.failure && !options.force) {
    const until = acmeBackoffUntil(state.failure);
    if (options.automatic && now < until) return { kind: 'backing-off', until, failure: state.failure };
    if (state.failure.rateLimited && state.failure.retryAfter !== undefined && now < Date.parse(state.failure.retryAfter)) {
      throw new UserError(`the CA rate-limited uproxy until ${state.failure.retryAfter} (${state.failure.message}); the proxy keeps serving its current certificate. \`uproxy cert renew --force\` asks anyway`);
    }
  }
  const file = tlsPaths(projectDir).proxy;
  const settings = plan.config.proxy.tls.acme!;
  let pem: string;
  try {
    pem = await obtain(plan, endpoint, policy);
  } catch (error) {
    const explained = explainAcmeFailure(error, lastProblem, await failureContext(plan, lastUrl));
    const failure: AcmeFailure = {
      at: new Date(now).toISOString(),
      count: (state.failure?.count ?? 0) + 1,
      message: explained.message,
      ...(explained.retryAfter === undefined ? {} : { retryAfter: explained.retryAfter }),
      ...(explained.rateLimited ? { rateLimited: true } : {}),
    };
    writeAcmeState(projectDir, { ...state, failure });
    throw new UserError(`no certificate from ${settings.directoryUrl}: ${explained.message}`, explained.details);
  }
  const facts = certificateFacts(pem)!;
  writeFileAtomic(file, pem, 0o600);
  writeAcmeState(projectDir, {
    issued: {
      directoryUrl: settings.directoryUrl,
      domains: settings.domains,
      serial: facts.serial,
      issuer: facts.issuer,
      notAfter: new Date(facts.notAfter).toISOString(),
      obtainedAt: new Date().toISOString(),
      challenge: settings.challenge,
    },
  });
  const replaced = await syncProxyCertificate(endpoint, file, policy);
  return { kind: 'issued', reason: due ?? 'asked with --force', serial: facts.serial, issuer: facts.issuer, notAfter: facts.notAfter, replaced };
}

/** One ACME order, start to end: returns the PEM the proxy loads (chain, leaf first, then the key). */
async function obtain(plan: FleetPlan, endpoint: AdminEndpoint, policy: KeyPolicy): Promise<string> {
  const settings = plan.config.proxy.tls.acme!;
  lastProblem = null;
  lastUrl = settings.directoryUrl;
  await checkDirectory(settings.directoryUrl);
  const client = new acme.Client({
    directoryUrl: settings.directoryUrl,
    accountKey: readAccountKey(plan.projectDir, settings.directoryUrl) ?? (await createAccountKey(plan.projectDir, settings.directoryUrl)),
    // Polls a pending challenge or order from 1 s on (acme-client's default waits 5 s first).
    backoffMin: 1000,
    backoffMax: 10_000,
  });
  // As local-ca renewal does: a new key when the admin API may carry it, else the proxy's own.
  const current = readIfExists(tlsPaths(plan.projectDir).proxy);
  const kept = policy.keyOverAdminApi || current === null ? null : privateKey(current);
  const key = kept ?? (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
  const [, csr] = await acme.crypto.createCsr({ commonName: settings.domains[0], altNames: [...settings.domains] }, key);
  const chain = await client.auto({
    csr,
    email: settings.email,
    // Configuring a CA in uproxy.json is agreeing to its terms, as with Caddy and Traefik (README).
    termsOfServiceAgreed: true,
    challengePriority: [settings.challenge],
    // acme-client's own check fetches http://DOMAIN/ from here, which says nothing of whether the CA can.
    skipChallengeVerification: true,
    challengeCreateFn: async (authz, challenge, keyAuthorization) => {
      if (challenge.type !== settings.challenge) {
        const offered = authz.challenges.map((c) => c.type).join(', ');
        throw new UserError(`the CA offers no ${settings.challenge} challenge for ${authz.identifier.value} (it offers ${offered}): set proxy.tls.acme.challenge to one uproxy answers (http-01, tls-alpn-01)`);
      }
      const route = challengeRoute(authz.identifier.value, challenge);
      const body = route.type === 'http-01' ? keyAuthorization : await alpnCertificate(authz, keyAuthorization);
      await putAcmeChallenge(endpoint, route, body);
    },
    challengeRemoveFn: async (authz, challenge) => {
      if (challenge.type === settings.challenge) await deleteAcmeChallenge(endpoint, challengeRoute(authz.identifier.value, challenge));
    },
  });
  return `${chain.trim()}\n${key.trim()}\n`;
}

function challengeRoute(domain: string, challenge: { type: string; token?: string }): AcmeChallengeRoute {
  return challenge.type === 'http-01' ? { type: 'http-01', token: (challenge as { token: string }).token } : { type: 'tls-alpn-01', domain };
}

/** RFC 8737's self-signed certificate for one validation, with a throwaway key that only ever goes to the proxy. */
async function alpnCertificate(authz: acme.Authorization, keyAuthorization: string): Promise<string> {
  const key = await acme.crypto.createPrivateEcdsaKey('P-256');
  const [, certificate] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, key);
  return `${certificate.toString().trim()}\n${key.toString().trim()}\n`;
}

/** The account key for this CA, or null when there is none yet. Its account is found again by key (RFC 8555 7.3.1). */
function readAccountKey(projectDir: string, directoryUrl: string): string | null {
  return readIfExists(acmePaths(projectDir).accountKey(directoryUrl));
}

async function createAccountKey(projectDir: string, directoryUrl: string): Promise<string> {
  const file = acmePaths(projectDir).accountKey(directoryUrl);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const key = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
  writeFileAtomic(file, key, 0o600);
  return key;
}

/** What the failure message may name: the domains, where the CA must reach the proxy, and what they resolve to here. */
async function failureContext(plan: FleetPlan, url: string): Promise<Parameters<typeof explainAcmeFailure>[2]> {
  const { tls, publish } = plan.config.proxy;
  const settings = tls.acme!;
  const resolved = await Promise.all(
    settings.domains.map(async (domain) => {
      try {
        return { domain, addresses: (await lookup(domain, { all: true })).map((a) => a.address) };
      } catch {
        return { domain, addresses: [] };
      }
    }),
  );
  const listener = settings.challenge === 'http-01' ? { key: 'proxy.publishHttp', address: plainHttpListener(plan.config)!, port: 80 } : { key: 'proxy.publish', address: publish!, port: 443 };
  return { directoryUrl: settings.directoryUrl, url, challenge: settings.challenge, listener, resolved };
}
