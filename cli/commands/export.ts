import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('export').description('(being built: issue 18)').action(() => {
    throw new Error('uproxy export is not built yet');
  });
}
