import { execa, type Result } from 'execa';
import { fileURLToPath } from 'node:url';

/** The built CLI (npm test builds dist/ first), run as a user would run it. */
export const BIN = fileURLToPath(new URL('../../bin/uproxy', import.meta.url));

export function uproxy(args: readonly string[], cwd: string, timeoutMs = 120_000): Promise<Result<{ reject: false }>> {
  return execa('node', [BIN, ...args], { cwd, reject: false, timeout: timeoutMs, stdin: 'ignore' }) as Promise<Result<{ reject: false }>>;
}
