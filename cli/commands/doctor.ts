import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('doctor')
    .description('Check what this host can run: compilers and llhttp, QEMU, KVM, tun/tap, bridges, CAP_NET_ADMIN, a guest kernel, kraft, BuildKit')
    .option('--json', 'print JSON instead of lines', false)
    .action(async (options: { json: boolean }) => {
      const { hostChecks } = await import('../runtimes/probe.js');
      const checks = await hostChecks();
      if (options.json) {
        process.stdout.write(`${JSON.stringify(checks, null, 2)}\n`);
        return;
      }
      const width = Math.max(...checks.map((c) => c.name.length));
      for (const check of checks) {
        process.stdout.write(`${check.ok ? '✓' : '✗'} ${check.name.padEnd(width)}  ${check.detail}\n`);
        if (!check.ok && check.fix) process.stdout.write(`  ${' '.repeat(width)}  fix: ${check.fix}\n`);
      }
    });
}
