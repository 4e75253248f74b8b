import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type Result } from 'execa';
import { Agent } from 'undici';

/** The built CLI (npm test builds dist/ first), run as a user would run it. */
export const BIN = fileURLToPath(new URL('../../bin/uproxy', import.meta.url));

export function uproxy(args: readonly string[], cwd: string, timeoutMs = 120_000, env: Record<string, string> = {}): Promise<Result<{ reject: false }>> {
  return execa('node', [BIN, ...args], { cwd, reject: false, timeout: timeoutMs, stdin: 'ignore', env }) as Promise<Result<{ reject: false }>>;
}

/**
 * `uproxy init NAME --backends N` in `root`, with free ports chosen at `up` (0), so nothing
 * collides with other test files running meanwhile, and `edit` applied to its uproxy.json.
 * Returns the project directory.
 */
export async function initProject(root: string, name: string, backends: number, edit: (config: Record<string, any>) => void = () => {}): Promise<string> {
  const init = await uproxy(['init', name, '--backends', String(backends)], root);
  if (init.exitCode !== 0) throw new Error(`uproxy init ${name} failed: ${init.stderr}`);
  const dir = join(root, name);
  const file = join(dir, 'uproxy.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, any>;
  Object.assign(config.proxy, { port: 0, adminPort: 0 });
  edit(config);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return dir;
}

/** The project's client token and a client that trusts its CA, as its HTTPS clients must. */
export function projectClient(dir: string, options: Agent.Options = {}): { token: string; agent: Agent } {
  return {
    token: readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim(),
    agent: new Agent({ ...options, connect: { ca: readFileSync(join(dir, '.uproxy/tls/ca.pem'), 'utf8') } }),
  };
}
