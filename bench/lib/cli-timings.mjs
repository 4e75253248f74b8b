// Start-up cost of the CLI commands that should not load Ink/React, timed with hyperfine.
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './targets.mjs';

const COMMANDS = [['--help'], ['ps']];
const TARGET_MS = 150;

export async function runCliTimings(opts, log) {
  log('\n== CLI start-up (hyperfine) ==');
  const main = join(REPO, 'dist', 'main.js');
  if (!existsSync(main)) {
    const reason = 'dist/main.js is missing (run `npm run build` once the CLI compiles); CLI timings skipped';
    log(`  SKIPPED: ${reason}`);
    return { skipped: reason };
  }
  const hyperfine = await execa('hyperfine', ['--version'], { reject: false });
  if (hyperfine.exitCode !== 0) {
    const reason = 'hyperfine is not installed (apt-get install hyperfine); CLI timings skipped';
    log(`  SKIPPED: ${reason}`);
    return { skipped: reason };
  }
  // An empty directory: `ps` must answer quickly even with no fleet and no config around.
  const cwd = mkdtempSync(join(tmpdir(), 'uproxy-bench-cli-'));
  const bin = join(REPO, 'bin', 'uproxy');
  try {
    const results = [];
    for (const args of COMMANDS) {
      const once = await execa(bin, args, { cwd, reject: false, timeout: 30000 });
      const exportFile = join(cwd, 'hyperfine.json');
      const runs = opts.quick ? 5 : 20;
      // -N: no intermediate shell; -i: `ps` may exit non-zero with no fleet, which is still a timing.
      await execa('hyperfine', ['-N', '-i', '--warmup', '2', '--runs', String(runs), '--export-json', exportFile, [bin, ...args].join(' ')], {
        cwd,
        timeout: 120000,
      });
      const r = JSON.parse(readFileSync(exportFile, 'utf8')).results[0];
      const row = {
        command: `uproxy ${args.join(' ')}`,
        exitCode: once.exitCode,
        meanMs: r.mean * 1000,
        stddevMs: r.stddev * 1000,
        medianMs: r.median * 1000,
        minMs: r.min * 1000,
        targetMs: TARGET_MS,
      };
      results.push(row);
      log(
        `  ${row.command.padEnd(14)} mean ${row.meanMs.toFixed(1)} ms ± ${row.stddevMs.toFixed(1)}  median ${row.medianMs.toFixed(1)} ms` +
          `  (exit ${row.exitCode}; target < ${TARGET_MS} ms: ${row.medianMs < TARGET_MS ? 'met' : 'NOT met'})`,
      );
    }
    return { results };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}
