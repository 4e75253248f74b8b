import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('push').description('(being built: issue 18)').action(() => {
    throw new Error('uproxy push is not built yet');
  });
}
