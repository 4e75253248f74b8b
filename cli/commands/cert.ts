import type { Command } from 'commander';
import { projectDir } from './options.js';

export function register(program: Command): void {
  const cert = program
    .command('cert')
    .description("The proxy's HTTPS certificate: what it is, and renewing it (from the ACME CA in mode acme, the project CA in mode local-ca)")
    .addHelpText('after', '\nExamples:\n  $ uproxy cert status\n  $ uproxy cert renew\n  $ uproxy cert renew --force');

  cert
    .command('status')
    .description('Issuer, names and expiry of the certificate in .uproxy/tls/proxy.pem and of the one the running proxy serves; with ACME, when it renews and the last failure')
    .option('--json', 'print JSON', false)
    .action(async (options: { json: boolean }, command: Command) => {
      const { certStatus } = await import('../core/cert.js');
      const { certStatusText } = await import('../core/output.js');
      const status = await certStatus(projectDir(command));
      process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : certStatusText(status));
    });

  cert
    .command('renew')
    .description('Renew the running proxy\'s certificate if it is due (ACME: 30 days or a third of its life left) and hand it to the proxy without a restart; a failure leaves the current one serving')
    .option('--force', 'ACME: ask the CA now, due or not, through any backoff after failures or rate limits', false)
    .option('--scheduled', 'as a periodic job runs it: quiet when nothing is due, and after a failure leaves the CA alone for a while (5 minutes, doubling to a day)', false)
    .action(async (options: { force: boolean; scheduled: boolean }, command: Command) => {
      const { certRenew } = await import('../core/cert.js');
      const { renewText } = await import('../core/output.js');
      const text = renewText(await certRenew(projectDir(command), options), options.scheduled);
      if (text) process.stdout.write(text);
    });
}
