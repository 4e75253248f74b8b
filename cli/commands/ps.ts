import type { Command } from 'commander';
import { projectDir } from './options.js';

export function register(program: Command): void {
  program
    .command('ps')
    .description('List the machines of the fleet with their process state and health (exit 1 when the fleet has no running proxy)')
    .option('--json', 'print JSON instead of a table', false)
    .addHelpText('after', '\nExamples:\n  $ uproxy ps\n  $ uproxy ps --json | jq ".machines[].pid"')
    .action(async (options: { json: boolean }, command: Command) => {
      const { listingJson, listMachines, missingProxy } = await import('../core/ps.js');
      const { certificateLine, machineTable, curlLine } = await import('../core/output.js');
      const listing = await listMachines(projectDir(command));
      const missing = missingProxy(listing);
      if (missing) process.exitCode = 1;
      if (options.json) {
        process.stdout.write(`${JSON.stringify(listingJson(listing), null, 2)}\n`);
        return;
      }
      if (!listing.state) {
        process.stdout.write('No fleet is running here (`uproxy up` starts one).\n');
        return;
      }
      const note = listing.healthUnknown ? `\nHealth unknown: ${listing.healthUnknown}\n` : '';
      const certificate = listing.certificateExpiry === undefined ? '' : `${certificateLine(listing.certificateExpiry, Date.now(), listing.certificateIssuer)}\n`;
      const last = missing ? `No proxy: ${missing}` : `${certificate}${curlLine(listing.state.proxy, projectDir(command))}`;
      process.stdout.write(`${machineTable(listing.machines)}\n${note}\n${last}\n`);
    });
}
