import type { Command } from 'commander';
import { projectDir } from './options.js';

export function register(program: Command): void {
  program
    .command('logs')
    .description('Print the output of a machine (or of a build: build-proxy, build-backend)')
    .argument('<name>', 'machine name, as in `uproxy ps`')
    .option('-f, --follow', 'keep printing new output until Ctrl-C', false)
    .addHelpText('after', '\nExamples:\n  $ uproxy logs proxy\n  $ uproxy logs backend-2 --follow')
    .action(async (name: string, options: { follow: boolean }, command: Command) => {
      const { logFile, printLog } = await import('../core/logs.js');
      const file = logFile(projectDir(command), name);
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      await printLog(file, process.stdout, options.follow, stop.signal);
    });
}
