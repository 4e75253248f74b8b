import { Option, type Command } from 'commander';
import type { AccelChoice } from '../fleet/qemu-command.js';
import { integerIn, projectDir, runtime, seconds } from './options.js';

export function register(program: Command): void {
  program
    .command('up')
    .description('Build and start the fleet, or bring a running one in line with uproxy.json (idempotent)')
    .option('--backends <n>', 'number of backends; saved as backends.count in uproxy.json (default: that count)', integerIn(1, 64))
    .option('--runtime <runtime>', 'host, qemu or kraft (default: runtime in uproxy.json)', runtime)
    .option('--timeout <seconds>', 'how long to wait for every backend to be up', seconds)
    .addOption(new Option('--accel <mode>', 'VM acceleration, for the qemu runtime only (overrides qemu.accel in uproxy.json)').choices(['auto', 'kvm', 'tcg']))
    .option('--dry-run', 'print what it would change in the running fleet (or every command of a first start), run nothing', false)
    .option('--verbose', 'show build output', false)
    .addHelpText('after', '\nExamples:\n  $ uproxy up --backends 3\n  $ uproxy up --backends 5      # scale a running fleet\n  $ uproxy up --dry-run')
    .action(async (options: { backends?: number; runtime?: 'host' | 'qemu' | 'kraft'; timeout?: number; accel?: AccelChoice; dryRun: boolean; verbose: boolean }, command: Command) => {
      const { up } = await import('../core/up.js');
      const { createProgress } = await import('../progress.js');
      const { certificateLine, machineTable, curlLine } = await import('../core/output.js');
      const progress = await createProgress({ verbose: options.verbose });
      try {
        const result = await up(
          {
            dir: projectDir(command),
            backends: options.backends,
            runtime: options.runtime,
            timeoutMs: options.timeout === undefined ? undefined : options.timeout * 1000,
            dryRun: options.dryRun,
            accel: options.accel,
          },
          progress,
        );
        for (const note of result.notes) process.stderr.write(`Note: ${note}\n`);
        if (result.kind === 'dry-run') {
          process.stdout.write(`${result.lines.join('\n')}\n`);
          return;
        }
        if (result.savedBackendsCount !== undefined) {
          process.stderr.write(`Saved "backends": { "count": ${result.savedBackendsCount} } in uproxy.json: a plain \`uproxy up\` keeps ${result.savedBackendsCount} backends.\n`);
        }
        const certificate = result.certificateExpiry === undefined ? '' : `${certificateLine(result.certificateExpiry, Date.now(), result.certificateIssuer)}\n`;
        process.stdout.write(`${machineTable(result.machines)}\n\n${certificate}${curlLine(result.state.proxy, projectDir(command))}\n`);
      } finally {
        await progress.close();
      }
    });
}
