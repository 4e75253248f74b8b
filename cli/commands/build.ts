import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('build').description('(being built: issue 18)').action(() => {
    throw new Error('uproxy build is not built yet');
  });
}
