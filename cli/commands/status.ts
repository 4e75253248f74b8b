import type { Command } from 'commander';
import { projectDir, secondsIn } from './options.js';

interface StatusOptions {
  interval: number;
  once: boolean;
  json: boolean;
}

export function register(program: Command): void {
  program
    .command('status')
    .description('Live view of the fleet: auth and balancing, refreshed every interval (q quits)')
    .option('--interval <seconds>', 'time between two samples of the proxy stats', secondsIn(0.1, 3600), 1)
    .option('--once', 'print one plain-text snapshot and exit (also when stdout is not a terminal)', false)
    .option('--json', 'print one snapshot as JSON (stats and rates) and exit', false)
    .addHelpText(
      'after',
      '\nRates are deltas of the proxy counters, so a snapshot (--once, --json, or not a terminal)' +
        '\ntakes two samples one interval apart before it prints.' +
        '\n\nKeys: q or Ctrl-C quit, arrows select a backend, d drain/undrain it, s sort, ? help.' +
        '\n\nExamples:\n  $ uproxy status\n  $ uproxy status --interval 0.5\n  $ uproxy status --json | jq ".rates.backends"',
    )
    .action(async (options: StatusOptions, command: Command) => {
      const { liveStatus, statusJson, statusSnapshot } = await import('../core/status.js');
      const dir = projectDir(command);
      const intervalMs = Math.round(options.interval * 1000);
      if (options.json || options.once || !process.stdout.isTTY || !process.stdin.isTTY) {
        const snapshot = await statusSnapshot(dir, intervalMs);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(statusJson(snapshot), null, 2)}\n`);
          return;
        }
        const { renderSnapshot } = await import('../tui/status-app.js');
        process.stdout.write(`${renderSnapshot(snapshot.fleet, intervalMs, snapshot.series, process.stdout.columns || 100)}\n`);
        return;
      }
      await liveStatus(dir, intervalMs);
    });
}
