import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { withTokenAdded, withTokenRemoved } from '../config/edit.js';
import { CONFIG_FILE, loadConfig } from '../config/load.js';
import { tokenNamePattern, type ClientToken } from '../config/schema.js';
import { generateToken, readToken, sha256Hex } from '../config/tokens.js';
import { UserError } from '../errors.js';
import { parseDateTime, parseDuration } from '../time-input.js';
import { writeFileAtomic } from '../files.js';
import { expirySeconds, planFleet } from '../fleet/plan.js';
import { readState, withLock } from '../fleet/state.js';
import { adminEndpointOf, deleteToken, listTokens, putToken, type AdminEndpoint } from '../stats/client.js';
import type { ProxyToken } from '../stats/schema.js';
import { SILENT } from '../progress.js';
import { loadRuntime } from '../runtimes/runtime.js';
import { runtimeContext } from './context.js';

/**
 * `uproxy token add|revoke|list`: client tokens changed in uproxy.json (hashes only, the rest
 * of the file as it was) and in the running proxy through its admin API, so no request fails
 * and nothing restarts. Without a running fleet only the file changes; `up` starts the proxy
 * with it. The plaintext of a new token is returned once, for the command to print: it is
 * never written anywhere, and the proxy only ever receives its SHA-256.
 */

/** What became of the running proxy: changed, no fleet to change, or why it could not be reached. */
export type Applied = { applied: true } | { applied: false; reason: 'no-fleet' } | { applied: false; reason: 'unreachable'; error: string };

export interface AddedToken {
  name: string;
  /** The token itself: shown once, kept nowhere. */
  token: string;
  expires?: string;
  proxy: Applied;
}

export interface TokenRow {
  name: string;
  /** RFC 3339; tokens made before `token add` (init's) have none. */
  created?: string;
  expires?: string;
  expired: boolean;
  /** Requests accepted since the proxy started, and the last one (Unix seconds); null without a running proxy, or none yet. */
  requests: number | null;
  lastUsed: number | null;
}

export interface TokenListing {
  tokens: TokenRow[];
  /** Why the proxy's counts are missing, when a fleet runs but did not answer. */
  proxyProblem?: string;
  /** Whether a fleet is running (counts come from its proxy). */
  running: boolean;
}

const EXPIRY_FORMS = 'a duration from now (30d, 12h, 1h30m) or a date (2026-12-31, 2026-12-31T18:00:00Z; no zone: local time)';
/** `--expires`: a duration counts forward from `now`; a date is when. Returns RFC 3339 UTC, to the second. */
export function parseExpiry(text: string, now = Date.now()): string {
  const duration = parseDuration(text);
  const ms = duration !== null ? now + duration : parseDateTime(text);
  if (ms === null) throw new UserError(`--expires: expected ${EXPIRY_FORMS}, got "${text}"`);
  if (ms <= now) throw new UserError(`--expires: ${new Date(ms).toISOString()} is already past; give a time in the future`);
  return rfc3339(Math.ceil(ms / 1000) * 1000);
}

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function checkName(name: string): void {
  if (!tokenNamePattern.test(name)) throw new UserError(`token name "${name}": use 1-63 characters of A-Z, a-z, 0-9, "_", "." or "-"`);
}

/** The running fleet's admin API, or null when no fleet runs here. */
function runningProxy(projectDir: string): AdminEndpoint | null {
  const state = readState(projectDir);
  return state ? adminEndpointOf(state, readToken(projectDir, 'admin')) : null;
}

async function apply(projectDir: string, change: (endpoint: AdminEndpoint) => Promise<unknown>): Promise<Applied> {
  const endpoint = runningProxy(projectDir);
  if (!endpoint) return { applied: false, reason: 'no-fleet' };
  try {
    await change(endpoint);
  } catch (error) {
    return { applied: false, reason: 'unreachable', error: (error as Error).message };
  }
  await resupervise(projectDir);
  return { applied: true };
}

/** A proxy its supervisor restarts must come back with the tokens it has now, not those of the last `up`. */
async function resupervise(projectDir: string): Promise<void> {
  const state = readState(projectDir);
  if (!state) return;
  const runtime = await loadRuntime(state.runtime);
  await runtime.refresh?.(planFleet(loadConfig(projectDir), projectDir, { runtime: state.runtime }), state, runtimeContext(projectDir, SILENT));
}

function editConfig(projectDir: string, edit: (text: string) => string): void {
  const file = join(projectDir, CONFIG_FILE);
  writeFileAtomic(file, edit(readFileSync(file, 'utf8')));
}

/** A new token NAME: saved to uproxy.json (its hash), then handed to the running proxy. */
export async function addToken(projectDir: string, name: string, options: { expires?: string }, now = Date.now()): Promise<AddedToken> {
  checkName(name);
  // Under up's lock: an up planned from the file before this change would revoke the token again.
  return withLock(projectDir, 'token add', () => addLocked(projectDir, name, options, now));
}

async function addLocked(projectDir: string, name: string, options: { expires?: string }, now: number): Promise<AddedToken> {
  const config = loadConfig(projectDir);
  if (config.proxy.tokens.some((t) => t.name === name)) {
    throw new UserError(`a token named "${name}" exists: \`uproxy token revoke ${name}\` first (its clients then get 401), or choose another name`);
  }
  const expires = options.expires === undefined ? undefined : parseExpiry(options.expires, now);
  const token = generateToken();
  const entry: ClientToken = { name, sha256: sha256Hex(token), created: rfc3339(Math.floor(now / 1000) * 1000), ...(expires ? { expires } : {}) };
  editConfig(projectDir, (text) => withTokenAdded(text, entry as Record<string, string>));
  const proxy = await apply(projectDir, (endpoint) =>
    putToken(endpoint, { name, sha256: entry.sha256, ...(expires ? { expires: expirySeconds(expires) } : {}) }));
  return { name, token, ...(expires ? { expires } : {}), proxy };
}

/** Revokes NAME: out of uproxy.json, and the running proxy answers its next request 401. */
export async function revokeToken(projectDir: string, name: string): Promise<Applied> {
  return withLock(projectDir, 'token revoke', () => revokeLocked(projectDir, name));
}

async function revokeLocked(projectDir: string, name: string): Promise<Applied> {
  const config = loadConfig(projectDir);
  const names = config.proxy.tokens.map((t) => t.name);
  if (!names.includes(name)) {
    throw new UserError(`no token named "${name}" in uproxy.json; it has ${names.map((n) => `"${n}"`).join(', ')} (\`uproxy token list\`)`);
  }
  if (names.length === 1) {
    throw new UserError(`"${name}" is the only token, and the proxy needs at least one: \`uproxy token add NAME\` first, then revoke "${name}"`);
  }
  editConfig(projectDir, (text) => withTokenRemoved(text, name));
  return apply(projectDir, (endpoint) => deleteToken(endpoint, name));
}

/** The tokens of uproxy.json, with each one's use as the running proxy counts it. */
export async function listProjectTokens(projectDir: string, now = Date.now()): Promise<TokenListing> {
  const config = loadConfig(projectDir);
  const endpoint = runningProxy(projectDir);
  let counted: ProxyToken[] = [];
  let proxyProblem: string | undefined;
  if (endpoint) {
    try {
      counted = await listTokens(endpoint, 1000);
    } catch (error) {
      proxyProblem = (error as Error).message;
    }
  }
  const tokens = config.proxy.tokens.map((t): TokenRow => {
    const seen = counted.find((c) => c.name === t.name);
    return {
      name: t.name,
      ...(t.created ? { created: t.created } : {}),
      ...(t.expires ? { expires: t.expires } : {}),
      expired: t.expires !== undefined && expirySeconds(t.expires) * 1000 <= now,
      requests: seen?.requests ?? null,
      lastUsed: seen?.last_used ?? null,
    };
  });
  return { tokens, running: endpoint !== null, ...(proxyProblem ? { proxyProblem } : {}) };
}
