import { InvalidArgumentError, type Command } from 'commander';
import { projectDir } from './options.js';

interface StatusOptions {
  interval: number;
  once: boolean;
  json: boolean;
}

function intervalSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0.1 || n > 3600) {
    throw new InvalidArgumentError(`expected a number of seconds from 0.1 to 3600, got "${value}"`);
  }
  return n;
}

export function register(program: Command): void {
  program
    .command('status')
    .description('Live view of the fleet: auth and balancing, refreshed every interval (q quits)')
    .option('--interval <seconds>', 'time between two samples of the proxy stats', intervalSeconds, 1)
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
      const { resolve } = await import('node:path');
      const { readState, statePath } = await import('../fleet/state.js');
      const { readToken } = await import('../config/tokens.js');
      const { fetchStats, setBackendDrain } = await import('../stats/client.js');
      const { UserError } = await import('../errors.js');

      const dir = resolve(projectDir(command));
      const state = readState(dir);
      if (!state) throw new UserError(`no fleet is running in ${dir} (${statePath(dir)} does not exist); start one with \`uproxy up\``);
      const endpoint = { url: `http://${state.proxy.admin}`, token: readToken(dir, 'admin') };
      const fleet = { name: state.fleet, runtime: state.runtime, proxyAddress: state.proxy.listen };
      const intervalMs = Math.round(options.interval * 1000);
      const fetch = () => fetchStats(endpoint, Math.max(2000, intervalMs));

      if (options.json || options.once || !process.stdout.isTTY || !process.stdin.isTTY) {
        const { sampleTwice } = await import('../tui/poller.js');
        const series = await sampleTwice(fetch, intervalMs).catch((error: Error) => {
          throw new UserError(`${error.message}; is the fleet up? \`uproxy ps\` shows its machines`);
        });
        if (options.json) {
          const json = { fleet: { ...fleet, admin: state.proxy.admin }, intervalMs, stats: series.latest.stats, rates: series.rates };
          process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
          return;
        }
        const { renderSnapshot } = await import('../tui/status-app.js');
        process.stdout.write(`${renderSnapshot(fleet, intervalMs, series, process.stdout.columns || 100)}\n`);
        return;
      }

      const { runLiveStatus } = await import('../tui/status-app.js');
      await runLiveStatus({
        fleet,
        intervalMs,
        fetch,
        drain: async (name, drain) => {
          try {
            return (await setBackendDrain(endpoint, name, drain)) ? { kind: 'done' } : { kind: 'unavailable' };
          } catch (error) {
            return { kind: 'failed', message: (error as Error).message };
          }
        },
      });
    });
}
