import type { Command } from 'commander';
import { projectDirIfAny, runtime } from './options.js';

export function register(program: Command): void {
  program
    .command('doctor')
    .description("Check that this host has what the project's runtime needs (exit 1 when it lacks any): build tools; for VMs QEMU, KVM, tun/tap, bridges, CAP_NET_ADMIN, a guest kernel, kraft, BuildKit")
    .option('--runtime <runtime>', "check for host, qemu or kraft (default: the project's runtime; outside a project, host)", runtime)
    .option('--all', 'check everything doctor knows, also what this runtime does not need (those do not change the exit status)', false)
    .option('--json', 'print JSON instead of lines', false)
    .addHelpText('after', '\nExamples:\n  $ uproxy doctor\n  $ uproxy doctor --runtime qemu   # before `uproxy init --runtime qemu`\n  $ uproxy doctor --all --json')
    .action(async (options: { runtime?: 'host' | 'qemu' | 'kraft'; all: boolean; json: boolean }, command: Command) => {
      const { doctor, doctorLines } = await import('../core/doctor.js');
      const report = await doctor({ dir: projectDirIfAny(command), runtime: options.runtime, all: options.all });
      if (!report.ok) process.exitCode = 1;
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${doctorLines(report).join('\n')}\n`);
    });
}
