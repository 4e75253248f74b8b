// The CLI's own costs, timed with hyperfine: start-up of `--help` and `ps` (which must not load
// Ink/React), and `up --backends 3` on the host runtime to healthy when nothing needs building.
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './targets.mjs';

const START_TARGET_MS = 150;
const UP_TARGET_MS = 1000;

export async function runCliTimings(opts, log) {
  log('\n== CLI costs (hyperfine) ==');
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
  const bin = join(REPO, 'bin', 'uproxy');
  const work = mkdtempSync(join(tmpdir(), 'uproxy-bench-cli-'));
  const runs = opts.quick ? 5 : 20;
  const timing = (args, cwd, targetMs, extra = {}) => time({ bin, args, cwd, targetMs, runs, exportFile: join(work, 'hyperfine.json'), log, ...extra });
  try {
    const results = [];
    // An empty directory: `ps` must answer quickly with no fleet and no config around.
    const empty = join(work, 'empty');
    mkdirSync(empty);
    results.push(await timing(['--help'], empty, START_TARGET_MS, { label: 'uproxy --help' }));
    results.push(await timing(['ps'], empty, START_TARGET_MS, { label: 'uproxy ps (no fleet)' }));
    results.push(...(await fleetTimings(bin, work, runs, timing, log)));
    return { results };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `ps` and `up` against a real host fleet of 3 backends, built once before anything is timed. */
async function fleetTimings(bin, work, runs, timing, log) {
  const project = join(work, 'fleet');
  await execa(bin, ['init', project, '--name', 'bench-cli'], { timeout: 60000 });
  // Free ports picked by the runtime: the bench must not collide with anything on fixed ones.
  const configFile = join(project, 'uproxy.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8'));
  config.proxy.port = 0;
  config.proxy.adminPort = 0;
  writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  const up = [bin, 'up', '--backends', '3'];
  const first = await execa(up[0], up.slice(1), { cwd: project, reject: false, all: true, timeout: 300000 });
  try {
    if (first.exitCode !== 0) {
      log(`  SKIPPED fleet timings: the first \`uproxy up\` failed: ${(first.all ?? '').trim().split('\n').slice(-3).join(' | ')}`);
      return [];
    }
    return [
      // Only a `ps` that got the proxy's answer (its health column) times the whole command.
      await timing(['ps'], project, START_TARGET_MS, { label: 'uproxy ps (3 backends running)', expect: /running, serving/ }),
      await timing(['up', '--backends', '3'], project, UP_TARGET_MS, { label: 'uproxy up --backends 3 (already healthy)', runs: Math.min(runs, 10) }),
      // Each run starts from a stopped fleet: the whole start, from nothing running to healthy.
      await timing(['up', '--backends', '3'], project, UP_TARGET_MS, {
        label: 'uproxy up --backends 3 (from stopped)',
        prepare: `${bin} down`,
        runs: Math.min(runs, 10),
      }),
    ];
  } finally {
    await execa(bin, ['down'], { cwd: project, reject: false, timeout: 60000 });
  }
}

async function time({ bin, args, cwd, targetMs, runs, exportFile, log, label, prepare, expect }) {
  const once = await execa(bin, args, { cwd, reject: false, timeout: 60000 });
  if (expect && !expect.test(once.stdout)) {
    const reason = `\`uproxy ${args.join(' ')}\` did not print ${expect}, so its time would not be the whole command's: ${once.stdout.trim().split('\n').slice(-3).join(' | ')}`;
    log(`  SKIPPED ${label}: ${reason}`);
    return { command: label, skipped: reason };
  }
  // -N: no intermediate shell; -i: a command that fails (say `ps` with an unhealthy fleet) is still a timing.
  const options = ['-N', '-i', '--warmup', '2', '--runs', String(runs), '--export-json', exportFile];
  if (prepare) options.push('--prepare', prepare);
  await execa('hyperfine', [...options, [bin, ...args].join(' ')], { cwd, timeout: 300000 });
  const r = JSON.parse(readFileSync(exportFile, 'utf8')).results[0];
  const row = {
    command: label,
    exitCode: once.exitCode,
    runs,
    meanMs: r.mean * 1000,
    stddevMs: r.stddev * 1000,
    medianMs: r.median * 1000,
    minMs: r.min * 1000,
    targetMs,
  };
  log(
    `  ${row.command.padEnd(42)} median ${row.medianMs.toFixed(1).padStart(6)} ms  mean ${row.meanMs.toFixed(1)} ± ${row.stddevMs.toFixed(1)}` +
      `  (exit ${row.exitCode}; target < ${targetMs} ms: ${row.medianMs < targetMs ? 'met' : 'NOT met'})`,
  );
  return row;
}
