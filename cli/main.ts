import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { register as registerInit } from './commands/init.js';
import { register as registerUp } from './commands/up.js';
import { register as registerDown } from './commands/down.js';
import { register as registerPs } from './commands/ps.js';
import { register as registerLogs } from './commands/logs.js';
import { register as registerStatus } from './commands/status.js';
import { register as registerDoctor } from './commands/doctor.js';
import { register as registerToken } from './commands/token.js';
import { register as registerCert } from './commands/cert.js';
import { register as registerBuild } from './commands/build.js';
import { register as registerPush } from './commands/push.js';
import { register as registerExport } from './commands/export.js';
import { register as registerSync } from './commands/sync.js';

/**
 * The command-line program. Each command file registers itself and imports the rest of
 * uproxy only when it runs, so `uproxy --help` loads nothing but commander.
 */

const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('uproxy')
  .description('Build and run a token-authenticated reverse proxy in front of a fleet of backends')
  .version(packageJson.version)
  .option('-C, --dir <dir>', 'project directory (where uproxy.json is)', '.')
  .option('--debug', 'show stack traces of errors', false)
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText(
    'after',
    '\nExample:\n  $ uproxy init demo && cd demo && uproxy up --backends 3 && uproxy ps && uproxy down',
  );

for (const register of [registerInit, registerUp, registerDown, registerPs, registerLogs, registerStatus, registerDoctor, registerToken, registerCert, registerBuild, registerPush, registerExport, registerSync]) register(program);

try {
  await program.parseAsync();
} catch (error) {
  reportError(error);
  process.exitCode = 1;
}

function reportError(error: unknown): void {
  const debug = program.opts<{ debug?: boolean }>().debug === true;
  const err = error instanceof Error ? error : new Error(String(error));
  const lines = [`uproxy: ${err.message}`];
  const details = (err as { details?: unknown }).details;
  if (Array.isArray(details)) lines.push(...details.map((line) => `  ${String(line)}`));
  if (debug && err.stack) lines.push(err.stack);
  else if (err.name !== 'UserError') lines.push('(run with --debug for the stack trace)');
  process.stderr.write(`${lines.join('\n')}\n`);
}
