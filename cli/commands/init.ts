import type { Command } from 'commander';
import { integerIn, runtime } from './options.js';

export function register(program: Command): void {
  program
    .command('init')
    .description('Create a uproxy project: uproxy.json, the proxy sources, a backend app and tokens')
    .argument('[dir]', 'directory to create the project in', '.')
    .option('--runtime <runtime>', 'host, qemu or kraft', runtime, 'host')
    .option('--backends <n>', 'number of backends `up` starts', integerIn(1, 64), 3)
    .option('--name <name>', 'fleet name (default: from the directory name)')
    .option('--force', 'overwrite existing files (and make new tokens)', false)
    .addHelpText('after', '\nExample:\n  $ uproxy init demo --backends 3 && cd demo && uproxy up')
    .action(async (dir: string, options: { runtime: 'host' | 'qemu' | 'kraft'; backends: number; name?: string; force: boolean }) => {
      const { initProject } = await import('../core/init.js');
      const { curlLine } = await import('../core/output.js');
      const result = initProject(dir, options);
      process.stdout.write(
        [
          `Created a ${options.runtime} fleet project in ${result.dir}`,
          '',
          `Client token (shown once; also in .uproxy/client-token, mode 0600):`,
          `  ${result.clientToken}`,
          '',
          `Next: ${dir === '.' ? '' : `cd ${dir} && `}uproxy up`,
          `Then: ${curlLine(`127.0.0.1:${result.port}`)}`,
          '',
        ].join('\n'),
      );
    });
}
