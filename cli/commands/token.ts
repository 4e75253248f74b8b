import type { Command } from 'commander';
import type { Applied } from '../core/tokens.js';
import { projectDir } from './options.js';

export function register(program: Command): void {
  const token = program
    .command('token')
    .description('Add, revoke and list client tokens: uproxy.json keeps their hashes, a running proxy changes at once, without a restart')
    .addHelpText(
      'after',
      '\nExamples:\n  $ uproxy token add ci --expires 30d\n  $ uproxy token list\n  $ uproxy token revoke ci',
    );

  token
    .command('add')
    .description('Make a new client token NAME, print it once, save its SHA-256 to uproxy.json and hand that to the running proxy')
    .argument('<name>', 'the name the proxy reports it by (1-63 characters of A-Z, a-z, 0-9, "_", "." or "-")')
    .option('--expires <when>', 'refused from then on: a duration from now (30d, 12h) or a date (2026-12-31, 2026-12-31T18:00:00Z)')
    .action(async (name: string, options: { expires?: string }, command: Command) => {
      const { addToken } = await import('../core/tokens.js');
      const added = await addToken(projectDir(command), name, options);
      const expiry = added.expires ? `, valid until ${added.expires}` : '';
      process.stdout.write(`Token "${added.name}"${expiry} (shown once; uproxy.json keeps only its SHA-256):\n  ${added.token}\n${appliedLine(added.proxy, 'The running proxy accepts it now')}\n`);
      if (!added.proxy.applied && added.proxy.reason === 'unreachable') process.exitCode = 1;
    });

  token
    .command('revoke')
    .description('Remove client token NAME from uproxy.json and the running proxy: its next request gets 401')
    .argument('<name>', 'the token to revoke (`uproxy token list` shows them)')
    .action(async (name: string, _options: unknown, command: Command) => {
      const { revokeToken } = await import('../core/tokens.js');
      const applied = await revokeToken(projectDir(command), name);
      process.stdout.write(`Token "${name}" revoked in uproxy.json.\n${appliedLine(applied, 'The running proxy refuses it now')}\n`);
      if (!applied.applied && applied.reason === 'unreachable') process.exitCode = 1;
    });

  token
    .command('list')
    .description('The client tokens: name, created, expiry, and requests and last use as the running proxy counts them')
    .option('--json', 'print JSON instead of a table', false)
    .action(async (options: { json: boolean }, command: Command) => {
      const { listProjectTokens } = await import('../core/tokens.js');
      const { table } = await import('../core/output.js');
      const listing = await listProjectTokens(projectDir(command));
      if (options.json) {
        process.stdout.write(`${JSON.stringify(listing, null, 2)}\n`);
        return;
      }
      const when = (seconds: number | null): string => (seconds === null ? '-' : new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'));
      const rows = listing.tokens.map((t) => [
        t.name,
        t.created ?? '-',
        t.expires ? `${t.expires}${t.expired ? ' (expired)' : ''}` : 'never',
        t.requests === null ? '-' : String(t.requests),
        when(t.lastUsed),
      ]);
      const note = listing.proxyProblem
        ? `\nRequests unknown: ${listing.proxyProblem}\n`
        : listing.running ? '' : '\nNo fleet is running: requests and last use are counted by a running proxy (since it started).\n';
      process.stdout.write(`${table(['NAME', 'CREATED', 'EXPIRES', 'REQUESTS', 'LAST USED'], rows)}\n${note}`);
    });
}

/** What the running proxy made of it; `done` says it for a proxy that took the change. */
function appliedLine(applied: Applied, done: string): string {
  if (applied.applied) return `${done} (no restart).`;
  if (applied.reason === 'no-fleet') return 'No fleet is running here: `uproxy up` starts the proxy with uproxy.json\'s tokens.';
  return `The running proxy did not take it (${applied.error}); \`uproxy up\` hands it uproxy.json's tokens.`;
}
