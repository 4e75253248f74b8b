import type { Command } from 'commander';
import { projectDir, seconds } from './options.js';

export function register(program: Command): void {
  program
    .command('down')
    .description('Stop every machine of the fleet and remove its state (idempotent)')
    .option('--force', "also stop every process marked as one of this project's machines, recorded or not (QEMU: by its recorded command line; kraft: the fleet's machines kraft lists)", false)
    .option('--timeout <seconds>', 'grace period after SIGTERM before SIGKILL', seconds, 10)
    .addHelpText('after', '\nExamples:\n  $ uproxy down\n  $ uproxy down --force   # after a crash')
    .action(async (options: { force: boolean; timeout: number }, command: Command) => {
      const { down } = await import('../core/down.js');
      const { createProgress } = await import('../progress.js');
      const progress = await createProgress();
      try {
        const stopped = await down({ dir: projectDir(command), force: options.force, timeoutMs: options.timeout * 1000 }, progress);
        process.stdout.write(stopped === 0 ? 'Nothing to stop: no fleet is running here.\n' : `Stopped ${stopped} ${stopped === 1 ? 'machine' : 'machines'}.\n`);
      } finally {
        await progress.close();
      }
    });
}
