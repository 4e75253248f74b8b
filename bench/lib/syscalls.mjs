// System calls per request: strace attaches to a ready proxy, counts the calls made while a
// fixed number of requests goes through, and detaches. Like the instruction count it does not
// move with machine noise; it shows extra calls per request (the issue asks for none).
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { drive } from './callgrind.mjs';
import { PROXY_CPU, sleep, startPinned, stop } from './processes.mjs';
import { waitUntilForwarding } from './sanity.mjs';
import { starters } from './targets.mjs';

const UPROXY_QUIET_ARGS = ['--health-interval-ms', '600000'];

// strace -c's table: "% time seconds usecs/call calls [errors] syscall", then a "total" row.
function parseSummary(text) {
  const calls = {};
  let total = 0;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^\d/.test(f[0])) continue;
    const name = f[f.length - 1];
    const count = Number(f[3]);
    if (name === 'total') total = count;
    else calls[name] = count;
  }
  return { total, calls };
}

async function countSyscalls(ctx, name, path, requests) {
  const target = await starters[name](ctx, { extraArgs: UPROXY_QUIET_ARGS });
  const out = join(ctx.dir, `strace-${name}-${path}.txt`);
  const logFile = join(ctx.dir, `strace-${name}-${path}.log`);
  let tracer;
  try {
    await waitUntilForwarding(target, ctx.token);
    tracer = startPinned('strace', PROXY_CPU, ['strace', '-c', '-f', '-o', out, '-p', String(target.proc.pid)], {
      logFile,
    });
    // strace says "Process N attached" once it is in place.
    const deadline = Date.now() + 10000;
    while (!/attached/.test(safeRead(logFile)) && Date.now() < deadline) await sleep(50);
    const statuses = await drive(target.port, path === 'valid' ? ctx.token : ctx.wrongToken, requests);
    await stop(tracer);
    const summary = parseSummary(safeRead(out));
    if (!summary.total) throw new Error(`strace wrote no summary for ${name} (${out})`);
    const perRequest = Object.fromEntries(
      Object.entries(summary.calls)
        .sort((a, b) => b[1] - a[1])
        .map(([call, count]) => [call, Number((count / requests).toFixed(2))]),
    );
    return { target: name, path, requests, statuses, total: summary.total, perRequestTotal: summary.total / requests, perRequest };
  } finally {
    await stop(tracer);
    await target.stop();
  }
}

function safeRead(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export async function runSyscalls(ctx, proxies, opts, log) {
  const requests = opts.quick ? 2000 : 10000;
  const names = proxies.filter((p) => p === 'uproxy' || p === 'haproxy');
  log(`\n== system calls per request (strace -c attached after readiness, ${requests} requests over 8 keep-alive connections) ==`);
  const version = await execa('strace', ['-V'], { reject: false });
  if (version.exitCode !== 0) {
    log('  SKIPPED: strace is not installed (apt-get install strace)');
    return { skipped: 'strace is not installed' };
  }
  const results = [];
  for (const name of names) {
    for (const path of ['valid', 'deny']) {
      try {
        const r = await countSyscalls(ctx, name, path, requests);
        results.push(r);
        const top = Object.entries(r.perRequest).slice(0, 6).map(([c, n]) => `${c} ${n}`).join(', ');
        log(`  ${name.padEnd(8)} ${path.padEnd(5)} ${r.perRequestTotal.toFixed(2).padStart(6)} syscalls/request  (${top})`);
      } catch (err) {
        results.push({ target: name, path, error: err.message });
        log(`  ${name} ${path}: ${err.message}`);
      }
    }
  }
  return results;
}
