// Instructions per request under `valgrind --tool=callgrind`: a figure that does not move with
// machine noise, to track the proxy's cost change by change. Collection is switched on only
// after the proxy is ready and off again before it shuts down, so start-up, health checks
// before readiness and shutdown are not counted; what remains is FIXED_REQUESTS requests over
// a few keep-alive connections.
import { execa } from 'execa';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Pool } from 'undici';
import { waitUntilForwarding } from './sanity.mjs';
import { RESULTS_DIR, starters } from './targets.mjs';
import { runTlsClient } from './tls.mjs';

const CONNECTIONS = 8;
// Health checks every 10 min: none fall inside the measured window.
const UPROXY_QUIET_ARGS = ['--health-interval-ms', '600000'];

export async function drive(port, token, requests) {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS, pipelining: 1 });
  let next = 0;
  const statuses = {};
  const worker = async () => {
    while (next < requests) {
      next++;
      const res = await pool.request({ path: '/', method: 'GET', headers: { 'x-auth-token': token } });
      await res.body.dump();
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  } finally {
    await pool.close();
  }
  return statuses;
}

function collection(pid, on) {
  return execa('callgrind_control', ['-i', on ? 'on' : 'off', String(pid)], { timeout: 30000 });
}

// The costliest functions (self cost), for a first look at where the instructions go.
async function topFunctions(files, count) {
  const r = await execa('callgrind_annotate', ['--inclusive=no', ...files], { reject: false, timeout: 60000 });
  return r.stdout
    .split('\n')
    .filter((l) => /^\s*[\d,]+ \(\s*[\d.]+%\)\s+\S/.test(l))
    .slice(1, count + 1)
    .map((l) => l.trim().replace(/\s+/g, ' '));
}

// Sums the "totals:" lines of every dump file this instance wrote ("summary:" may read 0 when
// instrumentation started switched off).
function instructionsIn(files) {
  let total = 0;
  for (const file of files) {
    const match = /^totals:\s+(\d+)/m.exec(readFileSync(file, 'utf8'));
    if (match) total += Number(match[1]);
  }
  return total;
}

// The TLS paths under callgrind: bench/tls-client for a fixed time (its count varies with the
// machine; the figure is per connection), 2 connections at once.
async function driveHandshakes(ctx, port, mode, seconds) {
  const r = await runTlsClient({ binary: ctx.tlsClient, port, conns: 2, seconds, token: ctx.token, mode });
  const { connect, read, write, timeout, status } = r.errors;
  return { requests: r.requests, statuses: { 200: r.requests - status, other: status, socketErrors: connect + read + write + timeout, resumed: r.resumed } };
}

async function countInstructions(ctx, name, path, requests, seconds) {
  const prefix = `callgrind.${name}.${path}`;
  const wrapper = ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${join(ctx.dir, prefix)}.%p`];
  const tls = path.startsWith('tls-');
  const target = await starters[name](ctx, { wrapper, extraArgs: UPROXY_QUIET_ARGS, tls });
  const token = path === 'valid' ? ctx.token : ctx.wrongToken;
  try {
    await waitUntilForwarding(target, ctx.token, 90000);
    await collection(target.proc.pid, true);
    let statuses;
    if (tls) ({ requests, statuses } = await driveHandshakes(ctx, target.port, path === 'tls-new' ? 'new' : 'resume', seconds));
    else statuses = await drive(target.port, token, requests);
    await collection(target.proc.pid, false);
    await target.stop();
    if (!target.proc.exited) throw new Error(`${name} did not exit on SIGTERM under valgrind`);
    const files = readdirSync(ctx.dir).filter((f) => f.startsWith(prefix)).map((f) => join(ctx.dir, f));
    const instructions = instructionsIn(files);
    if (!instructions) throw new Error(`no callgrind totals found for ${name} (see ${target.logFile})`);
    // Kept next to the JSON results for `callgrind_annotate` / kcachegrind.
    const kept = files.map((f) => {
      const dest = join(RESULTS_DIR, `${ctx.stamp}-${basename(f)}`);
      copyFileSync(f, dest);
      return dest;
    });
    const top = await topFunctions(files, 8);
    return { target: name, path, requests, statuses, instructions, perRequest: Math.round(instructions / requests), files: kept, top };
  } finally {
    await target.stop();
  }
}

export async function runCallgrind(ctx, proxies, opts, log) {
  const requests = opts.quick ? 2000 : 20000;
  const handshakeSeconds = opts.quick ? 5 : 15;
  // nginx forks its worker; following it under valgrind is a different set-up, so it is left out.
  const names = proxies.filter((p) => p === 'uproxy' || p === 'haproxy');
  const paths = [
    ...(opts.skip.has('plain') ? [] : ['valid', 'deny']),
    ...(opts.skip.has('tls') || !ctx.tlsClient ? [] : ['tls-new', 'tls-resumed']),
  ];
  log(
    `\n== instructions per request (valgrind --tool=callgrind, ${requests} requests over ${CONNECTIONS} keep-alive connections;` +
      ` tls-new / tls-resumed: per connection, ${handshakeSeconds} s of bench/tls-client with 2 at once) ==`,
  );
  mkdirSync(RESULTS_DIR, { recursive: true });
  const results = [];
  for (const name of names) {
    for (const path of paths) {
      try {
        const r = await countInstructions(ctx, name, path, requests, handshakeSeconds);
        results.push(r);
        log(`  ${name.padEnd(8)} ${path.padEnd(11)} ${r.perRequest.toLocaleString('en-US').padStart(9)} instructions/request  (${r.requests} requests; ${JSON.stringify(r.statuses)})`);
        for (const line of r.top.slice(0, 5)) log(`      ${line}`);
      } catch (err) {
        results.push({ target: name, path, error: err.message });
        log(`  ${name} ${path}: ${err.message}`);
      }
    }
  }
  const per = (t, p) => results.find((r) => r.target === t && r.path === p)?.perRequest;
  for (const path of paths) {
    if (per('uproxy', path) && per('haproxy', path)) {
      log(`  uproxy ÷ haproxy (${path}): ${(per('uproxy', path) / per('haproxy', path)).toFixed(2)}`);
    }
  }
  return results;
}
