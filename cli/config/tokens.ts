import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stateDir, writeFileAtomic } from '../files.js';
import { UserError } from '../errors.js';

/**
 * Tokens: 32 random bytes, base64url. uproxy.json and the proxy only ever see the SHA-256;
 * the plaintext lives in `.uproxy/<kind>-token` (mode 0600, git-ignored) and is read from
 * there by whoever needs it (curl, the admin client).
 */

export type TokenKind = 'client' | 'admin';

export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function tokenPath(projectDir: string, kind: TokenKind): string {
  return join(stateDir(projectDir), `${kind}-token`);
}

export function writeToken(projectDir: string, kind: TokenKind, token: string): void {
  // Only the owner may list or read the directory that holds plaintext tokens.
  mkdirSync(stateDir(projectDir), { recursive: true, mode: 0o700 });
  writeFileAtomic(tokenPath(projectDir, kind), `${token}\n`, 0o600);
}

export function readToken(projectDir: string, kind: TokenKind): string {
  const file = tokenPath(projectDir, kind);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    throw new UserError(`cannot read the ${kind} token ${file}: run \`uproxy init --tokens-only\` to make new tokens (only the tokens and their hashes in uproxy.json change; \`uproxy up\` then restarts the proxy with them)`);
  }
}
