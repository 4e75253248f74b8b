// One measured wrk run against a target, with the proxy's CPU and RSS read from /proc and the
// machine's other load accounted for, retried (bounded) when that other load makes it noisy.
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpuSeconds, userCpuSeconds, loadAverage, machineBusySeconds, rssKiB } from './procfs.mjs';
import { LOAD_CPU, PROXY_CPU, sleep } from './processes.mjs';
import { runTlsClient } from './tls.mjs';

const WRK_SCRIPT = join(import.meta.dirname, 'wrk-report.lua');
const RSS_SAMPLE_MS = 250;

// Run CPU time of this Node process plus its reaped children (wrk, once it has exited):
// bench-owned work that must not count as the machine's "other" load.
function selfAndChildrenSeconds() {
  const text = readFileSync('/proc/self/stat', 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

// The token reaches wrk through the environment (read by the Lua script), not its argv. Over
// TLS wrk keeps its connections alive like over plain HTTP: the keep-alive TLS path.
async function runWrk({ port, conns, seconds, token, tls = false }) {
  const argv = [
    '-c', LOAD_CPU, 'wrk', '-t1', `-c${conns}`, `-d${seconds}s`, '--timeout', '5s', '--latency',
    '-s', WRK_SCRIPT, `${tls ? 'https' : 'http'}://127.0.0.1:${port}/`,
  ];
  const result = await execa('taskset', argv, {
    env: { BENCH_TOKEN: token },
    reject: false,
    timeout: (seconds + 20) * 1000,
  });
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"requests"'));
  if (result.exitCode !== 0 || !line) {
    throw new Error(`wrk failed (exit ${result.exitCode}${result.timedOut ? ', timed out' : ''}): ${result.stderr || result.stdout}`.trim());
  }
  return JSON.parse(line);
}

export async function warmUp(target, token, seconds = 1) {
  await runWrk({ port: target.port, conns: 64, seconds, token, tls: Boolean(target.tls) });
}

// `handshakes` ({ binary, mode }) replaces wrk by bench/tls-client: one request per connection,
// a full handshake each ('new') or a resumed one ('resume').
async function measureOnce({ target, backends, conns, seconds, token, handshakes }) {
  const proxyPids = target.pids();
  const backendPids = backends.pids();
  const before = {
    wall: performance.now(),
    machine: machineBusySeconds(),
    proxy: cpuSeconds(proxyPids),
    proxyUser: userCpuSeconds(proxyPids),
    backends: cpuSeconds(backendPids),
    self: selfAndChildrenSeconds(),
    loadavg: loadAverage(),
  };
  let rssMax = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rssMax = Math.max(rssMax, rssKiB(proxyPids));
      await sleep(RSS_SAMPLE_MS);
    }
  })();
  let wrk;
  try {
    wrk = handshakes
      ? await runTlsClient({ ...handshakes, port: target.port, conns, seconds, token })
      : await runWrk({ port: target.port, conns, seconds, token, tls: Boolean(target.tls) });
  } finally {
    sampling = false;
    await sampler;
  }
  const wall = (performance.now() - before.wall) / 1000;
  const proxyCpu = cpuSeconds(proxyPids) - before.proxy;
  const proxyUserCpu = userCpuSeconds(proxyPids) - before.proxyUser;
  const loadCoreCpu = cpuSeconds(backendPids) - before.backends;
  const selfCpu = selfAndChildrenSeconds() - before.self;
  const machine = machineBusySeconds();
  const otherCores = Math.max(0, machine.busy - before.machine.busy - proxyCpu - loadCoreCpu - selfCpu) / wall;
  // Everything is pinned, so each core's share of the other load can be told apart too.
  const coreDelta = (cpu) => machine.perCore[`cpu${cpu}`] - before.machine.perCore[`cpu${cpu}`];
  const otherOnProxyCore = Math.max(0, coreDelta(PROXY_CPU) - proxyCpu) / wall;
  const otherOnLoadCore = Math.max(0, coreDelta(LOAD_CPU) - loadCoreCpu - selfCpu) / wall;
  const durationS = wrk.duration_us / 1e6;
  return {
    requests: wrk.requests,
    rps: wrk.requests / durationS,
    errors: wrk.errors,
    latencyMs: Object.fromEntries(Object.entries(wrk.latency_us).map(([k, v]) => [k, v / 1000])),
    proxyCpuPct: target.proc ? (100 * proxyCpu) / wall : null,
    proxyUserPct: target.proc ? (100 * proxyUserCpu) / wall : null,
    reqPerCoreSecond: target.proc && proxyCpu > 0 ? wrk.requests / proxyCpu : null,
    rssLoadKiB: target.proc ? rssMax : null,
    // Backends + wrk + this harness: the core that generates and serves the load.
    loadCorePct: (100 * (loadCoreCpu + selfCpu)) / wall,
    otherCores,
    otherOnProxyCore,
    otherOnLoadCore,
    stealS: machine.steal - before.machine.steal,
    ...(handshakes ? { handshakes: { resumed: wrk.resumed, protocol: wrk.protocol, group: wrk.group } } : {}),
    loadavgBefore: before.loadavg,
    durationS,
  };
}

// Samples the machine's other load for `sampleMs` while the bench itself is idle.
async function otherLoadNow(pids, sampleMs = 500) {
  const t0 = performance.now();
  const m0 = machineBusySeconds().busy;
  const own0 = cpuSeconds(pids) + selfAndChildrenSeconds();
  await sleep(sampleMs);
  const own = cpuSeconds(pids) + selfAndChildrenSeconds() - own0;
  return Math.max(0, machineBusySeconds().busy - m0 - own) / ((performance.now() - t0) / 1000);
}

// Waits (bounded by `maxWaitMs`) for a moment when other load is under the threshold, so that
// fewer runs need a rerun on a shared machine.
async function waitForQuiet(pids, noiseThreshold, maxWaitMs) {
  const deadline = Date.now() + maxWaitMs;
  while (Date.now() < deadline) {
    if ((await otherLoadNow(pids)) <= noiseThreshold) return;
  }
}

// A run is noisy when something outside the bench used more than `noiseThreshold` cores during
// it. It is rerun (at most `maxAttempts` times in all) and the quietest attempt is kept.
// Before each attempt it waits, bounded, for the machine to be quiet.
export async function measure({ target, backends, conns, seconds, token, handshakes, noiseThreshold, maxAttempts, quietWaitMs }) {
  let best;
  let attempts = 0;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    attempts = attempt;
    await waitForQuiet([...target.pids(), ...backends.pids()], noiseThreshold, quietWaitMs);
    const run = await measureOnce({ target, backends, conns, seconds, token, handshakes });
    run.attempt = attempt;
    run.noisy = run.otherCores > noiseThreshold;
    if (!best || run.otherCores < best.otherCores) best = run;
    if (!run.noisy) break;
  }
  best.attempts = attempts;
  return best;
}
