/**
 * Runs the `ip` and `nft` command lines the network code renders. A runner is a parameter
 * everywhere so that the same code can be pointed into a network namespace (tests wrap each
 * command in `ip netns exec`) or only printed (`--dry-run`).
 */
import { execa } from 'execa';
import { toShell, type CommandLine } from '../fleet/argv.js';

export type Runner = (command: CommandLine) => Promise<string>;

export class CommandError extends Error {
  constructor(readonly command: CommandLine, readonly stderr: string, exit: string) {
    super(`\`${toShell(command)}\` failed (${exit}): ${stderr.trim() || 'no output'}${hint(stderr)}`);
  }
}

/** Runs commands on this host; `wrap` is prepended to every command (e.g. `ip netns exec ns`). */
export function localRunner(wrap: readonly string[] = []): Runner {
  return async (command) => {
    const [file, ...args] = [...wrap, command.file, ...command.args];
    const result = await execa(file!, args, { reject: false });
    if (result.failed) {
      throw new CommandError(command, result.stderr || String(result.message), result.exitCode === undefined ? 'did not start' : `exit ${result.exitCode}`);
    }
    return result.stdout;
  };
}

function hint(stderr: string): string {
  return /Operation not permitted|Permission denied/i.test(stderr)
    ? '\nThis needs CAP_NET_ADMIN: run uproxy as root (sudo), or use `--runtime host`, which needs no network privileges.'
    : '';
}
