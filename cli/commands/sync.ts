import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('sync').description('(being built: issue 18)').action(() => {
    throw new Error('uproxy sync is not built yet');
  });
}
