import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseSince } from '../logs/since.js';
import { projectDir } from './options.js';

interface Options {
  follow: boolean;
  tail: number | 'all';
  since?: number;
  timestamps: boolean;
  prefix: boolean;
  color: boolean;
}

export function register(program: Command): void {
  program
    .command('logs')
    .description('Print the output of the fleet\'s machines interleaved by time, or of the named ones (or of a build: build-proxy, build-backend)')
    .argument('[names...]', 'machine names, as in `uproxy ps` (default: every machine)')
    .option('-f, --follow', 'keep printing new output until Ctrl-C', false)
    .addOption(new Option('-n, --tail <lines>', 'only the last LINES lines of each machine').argParser(tailLines).default('all'))
    .option('--since <time>', 'only lines since a duration ago (10m, 1h30m, 2d) or a time (2026-01-31T09:00:00Z; no zone: local)', since)
    .option('-t, --timestamps', 'print each line\'s time (its own, or the one before it) in front of it', false)
    .option('--no-prefix', 'leave out the "name | " prefix')
    .option('--no-color', 'no colors (also without a terminal, or with NO_COLOR set)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ uproxy logs\n  $ uproxy logs -f --tail 10\n  $ uproxy logs proxy --since 10m\n  $ uproxy logs backend-2 backend-3 --follow',
    )
    .action(async (names: string[], options: Options, command: Command) => {
      const { printLogs } = await import('../core/logs.js');
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      const { follow, tail, since, timestamps, prefix, color } = options;
      await printLogs(
        projectDir(command),
        { names, tail: tail === 'all' ? null : tail, since: since ?? null, follow, format: { timestamps, prefix, color } },
        process.stdout,
        stop.signal,
      );
    });
}

// "all" stays a string: commander replaces a parser's null with ''.
function tailLines(value: string): number | 'all' {
  if (value === 'all') return value;
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected a number of lines or "all", got "${value}"`);
  return Number(value);
}

function since(value: string): number {
  try {
    return parseSince(value, Date.now());
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}
