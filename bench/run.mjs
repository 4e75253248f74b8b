// `npm run bench [-- options]`: uproxy's proxy against HAProxy, nginx, the floor relay and the
// direct path.
// See bench/README.md for what is measured and how to read the table.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { runCallgrind } from './lib/callgrind.mjs';
import { runCliTimings } from './lib/cli-timings.mjs';
import { runSyscalls } from './lib/syscalls.mjs';
import { runIdleConnections } from './lib/idle-connections.mjs';
import { measure, warmUp } from './lib/measure.mjs';
import { LOAD_CPU, PROXY_CPU, stopAll } from './lib/processes.mjs';
import { rssKiB } from './lib/procfs.mjs';
import { ratiosToFloor, ratiosToHaproxy, renderTables, renderTlsVerdicts, summarize } from './lib/report.mjs';
import { checkSameJob, httpGet, waitUntilForwarding } from './lib/sanity.mjs';
import { buildFloorBinary, ensureUproxyBinary, PROXY_NAMES, RESULTS_DIR, startBackends, starters, TARGET_NAMES, TLS_TARGET_NAMES } from './lib/targets.mjs';
import { buildTlsClient, makeCertificate, TLS13_CIPHERSUITES } from './lib/tls.mjs';

const SKIPPABLE = ['load', 'idle', 'callgrind', 'syscalls', 'cli', 'plain', 'tls'];

const USAGE = `usage: npm run bench -- [options]
  --quick                 1 repetition, 2 s runs, 16 and 256 connections (TLS too), short extras
  --only LIST             targets, comma-separated, from: ${TARGET_NAMES.join(',')}
  --reps N                repetitions (default 3)
  --seconds N             seconds per wrk run (default 5)
  --conns LIST            connection counts (default 1,16,64,256)
  --tls-conns LIST        connection counts of the keep-alive TLS path (default 16,64,256)
  --handshake-conns N     connections at once on the new/resumed TLS paths (default 16)
  --noise-threshold C     other load, in cores, above which a run is noisy (default 0.2)
  --attempts N            attempts per run while it is noisy (default 3, quick 2)
  --quiet-wait S          before each attempt, wait up to S seconds for other load to drop (default 5, quick 2)
  --skip LIST             parts to skip: load,idle,callgrind,syscalls,cli; plain,tls (the
                          plain-HTTP or the TLS paths of the load runs and the idle check)
  --help`;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      reps: { type: 'string' },
      seconds: { type: 'string' },
      conns: { type: 'string' },
      'tls-conns': { type: 'string' },
      'handshake-conns': { type: 'string' },
      'noise-threshold': { type: 'string' },
      attempts: { type: 'string' },
      'quiet-wait': { type: 'string' },
      skip: { type: 'string', default: '' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const list = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);
  const positiveInt = (name, v, fallback) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const targets = values.only ? list(values.only) : TARGET_NAMES;
  for (const t of targets) {
    if (!TARGET_NAMES.includes(t)) throw new Error(`--only: unknown target "${t}"; choose from ${TARGET_NAMES.join(', ')}`);
  }
  const skip = new Set(list(values.skip));
  for (const s of skip) {
    if (!SKIPPABLE.includes(s)) throw new Error(`--skip: unknown part "${s}"; choose from ${SKIPPABLE.join(', ')}`);
  }
  const conns = values.conns
    ? list(values.conns).map((c) => positiveInt('conns', c))
    : values.quick ? [16, 256] : [1, 16, 64, 256];
  const tlsConns = values['tls-conns']
    ? list(values['tls-conns']).map((c) => positiveInt('tls-conns', c))
    : values.quick ? [16, 256] : [16, 64, 256];
  const noiseThreshold = values['noise-threshold'] === undefined ? 0.2 : Number(values['noise-threshold']);
  if (!(noiseThreshold > 0)) throw new Error(`--noise-threshold must be a positive number of cores, got "${values['noise-threshold']}"`);
  return {
    quick: values.quick,
    targets,
    reps: positiveInt('reps', values.reps, values.quick ? 1 : 3),
    seconds: positiveInt('seconds', values.seconds, values.quick ? 2 : 5),
    conns,
    tlsConns,
    handshakeConns: positiveInt('handshake-conns', values['handshake-conns'], 16),
    noiseThreshold,
    maxAttempts: positiveInt('attempts', values.attempts, values.quick ? 2 : 3),
    quietWaitMs: 1000 * positiveInt('quiet-wait', values['quiet-wait'], values.quick ? 2 : 5),
    skip,
  };
}

async function versions() {
  const first = async (cmd, args) => {
    const r = await execa(cmd, args, { reject: false, all: true });
    return (r.all ?? '').split('\n')[0].trim();
  };
  return {
    haproxy: await first('haproxy', ['-v']),
    nginx: await first('nginx', ['-v']),
    wrk: await first('wrk', ['-v']),
    node: process.version,
  };
}

// The key a target's problems are filed under: a TLS instance is a process of its own.
const targetId = (name, tls) => (tls ? `${name}-tls` : name);

async function startTarget(name, ctx, log, { tls = false } = {}) {
  const id = targetId(name, tls);
  const target = await starters[name](ctx, { tls });
  target.id = id;
  try {
    await waitUntilForwarding(target, ctx.token);
    if (name !== 'direct') {
      const problems = await checkSameJob(target, ctx.token);
      if (problems.length) throw new Error(`does not do the bench's job:\n    ${problems.join('\n    ')}`);
    }
    return target;
  } catch (err) {
    await target.stop();
    ctx.unavailable[id] = `${err.message} (log: ${target.logFile})`;
    log(`  ${id}: left out: ${ctx.unavailable[id]}`);
    return undefined;
  }
}

// uproxy's own counters after the load runs: a cross-check of wrk's request and error counts.
async function uproxyStats(target, adminToken) {
  try {
    const res = await httpGet(target.adminPort, '/stats', { Authorization: `Bearer ${adminToken}` });
    return res.status === 200 ? JSON.parse(res.body) : { error: `GET /stats answered ${res.status}` };
  } catch (err) {
    return { error: `GET /stats: ${err.message}` };
  }
}

// What one repetition runs, in order: each (path, connections) on every target it applies to.
// Plain HTTP: the valid and deny paths; TLS (a second instance of each proxy, listening with
// TLS): keep-alive requests (wrk), then new and resumed connections (bench/tls-client).
function runSpecs(opts, ctx) {
  const specs = [];
  if (!opts.skip.has('plain')) {
    for (const conns of opts.conns) for (const path of ['valid', 'deny']) specs.push({ path, conns, tls: false });
  }
  if (!opts.skip.has('tls')) {
    for (const conns of opts.tlsConns) specs.push({ path: 'tls', conns, tls: true });
    if (ctx.tlsClient) {
      specs.push({ path: 'tls-new', conns: opts.handshakeConns, tls: true, handshakes: { binary: ctx.tlsClient, mode: 'new' } });
      specs.push({ path: 'tls-resumed', conns: opts.handshakeConns, tls: true, handshakes: { binary: ctx.tlsClient, mode: 'resume' } });
    }
  }
  return specs;
}

async function startTargets(names, ctx, results, log, tls) {
  const targets = [];
  for (const name of names) {
    if (ctx.unavailable[name] || ctx.unavailable[targetId(name, tls)]) continue;
    const target = await startTarget(name, ctx, log, { tls });
    if (!target) continue;
    if (target.proc) results.rssIdleKiB[target.id] = rssKiB(target.pids());
    targets.push(target);
  }
  return targets;
}

async function runLoad(opts, ctx, results, log) {
  const targets = [
    ...(opts.skip.has('plain') ? [] : await startTargets(opts.targets, ctx, results, log, false)),
    ...(opts.skip.has('tls') ? [] : await startTargets(opts.targets.filter((t) => TLS_TARGET_NAMES.includes(t)), ctx, results, log, true)),
  ];
  const live = (spec) => targets.filter((t) => Boolean(t.tls) === spec.tls && !ctx.unavailable[t.id] && !(spec.path === 'deny' && t.name === 'direct'));
  try {
    for (const target of targets) {
      try {
        await warmUp(target, ctx.token);
      } catch (err) {
        ctx.unavailable[target.id] = `warm-up failed: ${err.message}`;
        log(`  ${target.id}: left out: ${ctx.unavailable[target.id]}`);
      }
    }
    const specs = runSpecs(opts, ctx);
    const total = opts.reps * specs.reduce((n, spec) => n + live(spec).length, 0);
    let done = 0;
    // Interleaved: each repetition visits every target before the next repetition starts, so
    // a slow drift of the machine spreads over all targets instead of favouring one.
    for (let rep = 1; rep <= opts.reps; rep++) {
      for (const spec of specs) {
        const { path, conns } = spec;
        for (const target of live(spec)) {
          const token = path === 'deny' ? ctx.wrongToken : ctx.token;
          let run;
          try {
            run = await measure({ target, backends: ctx.backends, conns, seconds: opts.seconds, token, handshakes: spec.handshakes, noiseThreshold: opts.noiseThreshold, maxAttempts: opts.maxAttempts, quietWaitMs: opts.quietWaitMs });
          } catch (err) {
            run = undefined;
            log(`  ${target.id}: ${err.message}`);
          }
          if (!run || target.proc?.exited) {
            const why = target.proc?.exited ? `exited (code ${target.proc.exitCode})` : 'its run failed';
            ctx.unavailable[target.id] = `${why} during the load runs; see ${target.logFile}`;
            log(`  ${target.id} ${why}: left out of the remaining runs`);
            continue;
          }
          results.runs.push({ target: target.name, path, conns, rep, ...run });
          done++;
          log(
            `  [${done}/${total}] rep ${rep} ${String(conns).padStart(3)} conns ${path.padEnd(11)} ${target.name.padEnd(7)} ` +
              `${Math.round(run.rps).toLocaleString('en-US').padStart(7)} req/s` +
              (run.proxyCpuPct !== null ? `  cpu ${run.proxyCpuPct.toFixed(0)}%` : '') +
              `  p99 ${run.latencyMs.p99.toFixed(2)} ms` +
              (run.handshakes ? `  resumed ${run.handshakes.resumed}/${run.requests} (${run.handshakes.protocol} ${run.handshakes.group})` : '') +
              `  other load ${run.otherCores.toFixed(2)} cores` +
              ` (proxy core ${run.otherOnProxyCore.toFixed(2)}, load core ${run.otherOnLoadCore.toFixed(2)})${run.noisy ? '  NOISY' : ''}` +
              (run.attempts > 1 ? ` (${run.attempts} attempts)` : ''),
          );
        }
      }
    }
    for (const target of targets) {
      if (target.adminPort && !target.proc.exited) results[target.tls ? 'uproxyTlsStats' : 'uproxyStats'] = await uproxyStats(target, ctx.adminToken);
    }
  } finally {
    for (const target of targets) await target.stop();
  }
}

function failedParts(results) {
  return [...(results.idleConnections ?? []), ...(results.callgrind ?? []), ...(Array.isArray(results.syscalls) ? results.syscalls : [])].some((r) => r.error);
}

async function main() {
  const opts = parseOptions();
  const log = (line) => console.log(line);
  const dir = mkdtempSync(join(tmpdir(), 'uproxy-bench-'));
  const token = randomBytes(16).toString('hex');
  const ctx = {
    dir,
    token,
    wrongToken: randomBytes(16).toString('hex'),
    tokenSha256: createHash('sha256').update(token).digest('hex'),
    adminToken: randomBytes(16).toString('hex'),
    unavailable: {},
  };
  ctx.adminTokenSha256 = createHash('sha256').update(ctx.adminToken).digest('hex');
  const startedAt = new Date().toISOString();
  ctx.stamp = `${startedAt.replace(/[:.]/g, '-')}${opts.quick ? '-quick' : ''}`;
  const results = {
    startedAt,
    options: { ...opts, skip: [...opts.skip] },
    pinning: { proxyCpu: PROXY_CPU, loadCpu: LOAD_CPU, note: 'proxy under test on one core; wrk, the backends and this harness on the other (taskset -c)' },
    versions: await versions(),
    unavailable: ctx.unavailable,
    rssIdleKiB: {},
    runs: [],
  };
  const parts = [
    ...(opts.skip.has('plain') ? [] : [`plain HTTP at ${opts.conns.join('/')} connections`]),
    ...(opts.skip.has('tls') ? [] : [`TLS keep-alive at ${opts.tlsConns.join('/')}, new/resumed with ${opts.handshakeConns} at once`]),
  ];
  log(`uproxy bench: ${opts.reps} rep(s) x ${opts.seconds} s; ${parts.join('; ')}; targets ${opts.targets.join(', ')}`);
  log(`pinning: proxy on CPU ${PROXY_CPU}; wrk + backends (+ harness) on CPU ${LOAD_CPU}; noisy = other load > ${opts.noiseThreshold} cores (max ${opts.maxAttempts} attempts)`);

  // The harness samples /proc during runs: keep it off the proxy's core too.
  await execa('taskset', ['-a', '-p', '-c', LOAD_CPU, String(process.pid)]);

  const stopOnSignal = (signal) => {
    log(`\n${signal}: stopping every process the bench started`);
    stopAll().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);

  try {
    if (opts.targets.includes('uproxy')) {
      const binary = await ensureUproxyBinary();
      if (!binary.ok) {
        ctx.unavailable.uproxy = binary.reason;
        log(`uproxy proxy NOT BENCHED: ${binary.reason}`);
      } else if (binary.note) {
        log(`uproxy proxy: ${binary.note}`);
      }
    }
    if (opts.targets.includes('floor')) {
      const floor = await buildFloorBinary();
      if (!floor.ok) {
        ctx.unavailable.floor = floor.reason;
        log(`floor relay NOT BENCHED: ${floor.reason}`);
      }
    }
    if (!opts.skip.has('tls') && opts.targets.some((t) => TLS_TARGET_NAMES.includes(t))) {
      ctx.tls = { ...(await makeCertificate(dir)), ciphersuites: TLS13_CIPHERSUITES };
      const client = await buildTlsClient(dir);
      if (client.ok) ctx.tlsClient = client.binary;
      else {
        ctx.unavailable['tls-client'] = `${client.reason} (the new/resumed TLS paths are left out)`;
        log(`TLS handshake client NOT BUILT: ${client.reason}`);
      }
      log(`TLS: ECDSA P-256 certificate for localhost made in ${dir}; TLS 1.3 suites ${TLS13_CIPHERSUITES}`);
    }
    ctx.backends = await startBackends(dir);
    log(`backends: nginx on 127.0.0.1:${ctx.backends.ports.join(', ')}`);

    if (!opts.skip.has('load')) {
      await runLoad(opts, ctx, results, log);
      results.summaries = summarize(results.runs);
      results.ratios = ratiosToHaproxy(results.summaries, results.rssIdleKiB);
      results.floorRatios = ratiosToFloor(results.summaries);
      log(renderTables(results.summaries, results.ratios, results.floorRatios, results.rssIdleKiB));
    }
    const proxies = opts.targets.filter((t) => PROXY_NAMES.includes(t) && !ctx.unavailable[t]);
    if (!opts.skip.has('idle')) results.idleConnections = await runIdleConnections(ctx, proxies, opts, log);
    if (!opts.skip.has('callgrind')) results.callgrind = await runCallgrind(ctx, proxies, opts, log);
    if (!opts.skip.has('syscalls')) results.syscalls = await runSyscalls(ctx, proxies, opts, log);
    if (!opts.skip.has('cli')) results.cli = await runCliTimings(opts, log);
    const verdicts = renderTlsVerdicts(results.summaries ?? [], results.idleConnections);
    if (verdicts) log(verdicts);
    for (const [name, reason] of Object.entries(ctx.unavailable)) log(`\nNOT BENCHED: ${name}: ${reason}`);
  } finally {
    await stopAll();
    // Logs are kept when something failed: the messages above point into them.
    if (Object.keys(ctx.unavailable).length || failedParts(results)) log(`\nlogs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `${ctx.stamp}-bench.json`);
    results.finishedAt = new Date().toISOString();
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    log(`\nresults: ${file}`);
  }
}

main().catch(async (err) => {
  console.error(`bench failed: ${err.message}`);
  await stopAll();
  process.exit(1);
});
