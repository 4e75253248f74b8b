import { InvalidArgumentError, type Command } from 'commander';
import { integerIn, runtime } from './options.js';

export function register(program: Command): void {
  program
    .command('init')
    .description('Create a uproxy project: uproxy.json, the proxy sources, a backend app and tokens')
    .argument('[dir]', 'directory to create the project in', '.')
    .option('--runtime <runtime>', 'host, qemu or kraft', runtime, 'host')
    .option('--backends <n>', 'number of backends `up` starts', integerIn(1, 64), 3)
    .option('--name <name>', 'fleet name (default: from the directory name)')
    .option('--force', "overwrite existing files (and make new tokens); never while the project's fleet runs, and an existing .gitignore only gains uproxy's lines", false)
    .option('--tokens-only', 'in an existing project, make new client and admin tokens and change only their hashes in uproxy.json', false)
    .option('--unikraft <mode>', 'how the apps become unikernels: native (compiled into the kernel) or elfloader (a static-pie binary on the prebuilt base kernel)', unikraftMode, 'native')
    .option('--vendor-llhttp', "copy the local llhttp sources (Debian's node-llhttp) into proxy/llhttp/ and backend/llhttp/ so unikernel builds need no network", false)
    .addHelpText('after', '\nExamples:\n  $ uproxy init demo --backends 3 && cd demo && uproxy up\n  $ uproxy init --tokens-only      # lost or leaked tokens: new ones, nothing else touched')
    .action(async (dir: string, options: { runtime: 'host' | 'qemu' | 'kraft'; backends: number; name?: string; force: boolean; tokensOnly: boolean; unikraft: 'native' | 'elfloader'; vendorLlhttp: boolean }) => {
      const { initProject, regenerateTokens } = await import('../core/init.js');
      if (options.tokensOnly) {
        const tokens = regenerateTokens(dir);
        process.stdout.write(
          [
            `New tokens for ${tokens.dir}: .uproxy/admin-token, and .uproxy/client-token for client token "${tokens.clientTokenName}" (shown once):`,
            `  ${tokens.clientToken}`,
            'Only their hashes changed in uproxy.json. Run `uproxy up` to restart a running proxy with them (an admin token cannot change live);',
            'to replace a client token without a restart, use `uproxy token revoke NAME` and `uproxy token add NAME` instead.',
            '',
          ].join('\n'),
        );
        return;
      }
      const { curlLine, uproxyCommand } = await import('../core/output.js');
      const result = await initProject(dir, options);
      // A VM fleet's proxy has an address of its own, known once it runs: `up` prints its curl line.
      const then = options.runtime === 'host' ? curlLine({ listen: `127.0.0.1:${result.port}`, tls: result.tls }) : 'the curl line `up` prints (the proxy runs on its own address)';
      process.stdout.write(
        [
          `Created a ${options.runtime} fleet project in ${result.dir}`,
          '',
          `Client token (shown once; also in .uproxy/client-token, mode 0600):`,
          `  ${result.clientToken}`,
          '',
          `Next: ${dir === '.' ? '' : `cd ${dir} && `}${uproxyCommand(result.dir)} up`,
          `Then: ${then}`,
          '',
        ].join('\n'),
      );
    });
}

function unikraftMode(value: string): 'native' | 'elfloader' {
  if (value !== 'native' && value !== 'elfloader') throw new InvalidArgumentError(`expected native or elfloader, got "${value}"`);
  return value;
}
