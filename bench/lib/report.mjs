// Turns the measured runs into per-(path, connections, target) summaries, the uproxy/HAProxy
// and floor-relay ratios, and the printed table.

export function median(values) {
  const sorted = values.filter((v) => v !== null && v !== undefined).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// On the deny path every answer should be a 401, which wrk counts as a "status" error:
// there the error is any answer that is not one (requests - status). On every other path
// (plain or TLS) an error is any answer that is not a 2xx.
function errorCount(run, path) {
  const { connect, read, write, timeout, status } = run.errors;
  const socket = connect + read + write + timeout;
  return socket + (path === 'deny' ? Math.max(0, run.requests - status) : status);
}

const PATH_TITLES = {
  valid: 'valid token (forwarded, 200)',
  deny: 'wrong token (denied, 401)',
  tls: 'TLS, keep-alive (valid token, forwarded, 200; wrk over HTTPS)',
  'tls-new': 'TLS, new connections (full TLS 1.3 handshake + one request each; req/s = connections/s)',
  'tls-resumed': 'TLS, resumed connections (TLS 1.3 session resumption + one request each)',
};

export function summarize(runs) {
  const groups = new Map();
  for (const run of runs) {
    const key = `${run.path}|${run.conns}|${run.target}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(run);
  }
  return [...groups.values()].map((group) => {
    const { path, conns, target } = group[0];
    const rps = group.map((r) => r.rps);
    const med = median(rps);
    return {
      path,
      conns,
      target,
      reps: group.length,
      rps: {
        median: med,
        min: Math.min(...rps),
        max: Math.max(...rps),
        spreadPct: med ? (100 * (Math.max(...rps) - Math.min(...rps))) / med : null,
      },
      proxyCpuPct: median(group.map((r) => r.proxyCpuPct)),
      proxyUserPct: median(group.map((r) => r.proxyUserPct ?? null)),
      reqPerCoreSecond: median(group.map((r) => r.reqPerCoreSecond)),
      p50Ms: median(group.map((r) => r.latencyMs.p50)),
      p99Ms: median(group.map((r) => r.latencyMs.p99)),
      errors: group.reduce((sum, r) => sum + errorCount(r, path), 0),
      // Handshake paths: the share of connections the proxy resumed (0 on tls-new; on
      // tls-resumed all but each client slot's first).
      resumedPct: group[0].handshakes ? median(group.map((r) => (r.requests ? (100 * r.handshakes.resumed) / r.requests : null))) : undefined,
      rssLoadKiB: group.some((r) => r.rssLoadKiB !== null) ? Math.max(...group.map((r) => r.rssLoadKiB ?? 0)) : null,
      loadCorePct: median(group.map((r) => r.loadCorePct)),
      otherCoresMax: Math.max(...group.map((r) => r.otherCores)),
      noisyRuns: group.filter((r) => r.noisy).length,
      retries: group.reduce((sum, r) => sum + r.attempts - 1, 0),
    };
  });
}

const RATIO_FIELDS = {
  rps: (s) => s.rps.median,
  proxyCpuPct: (s) => s.proxyCpuPct,
  reqPerCoreSecond: (s) => s.reqPerCoreSecond,
  p50Ms: (s) => s.p50Ms,
  p99Ms: (s) => s.p99Ms,
  rssLoadKiB: (s) => s.rssLoadKiB,
};

const ratio = (a, b) => (a === null || a === undefined || !b ? null : a / b);

export function ratiosToHaproxy(summaries, idleRss) {
  const find = (path, conns, target) => summaries.find((s) => s.path === path && s.conns === conns && s.target === target);
  const perRun = [];
  for (const s of summaries.filter((x) => x.target === 'uproxy')) {
    const h = find(s.path, s.conns, 'haproxy');
    if (!h) continue;
    const fields = Object.fromEntries(Object.entries(RATIO_FIELDS).map(([k, get]) => [k, ratio(get(s), get(h))]));
    perRun.push({ path: s.path, conns: s.conns, ...fields });
  }
  return { perRun, rssIdle: ratio(idleRss.uproxy, idleRss.haproxy) };
}

// The floor relay (bench/floor) as a yardstick measured in the same run: uproxy ÷ floor says how
// close uproxy is to the least work per request one core can do here; floor ÷ haproxy says how
// much room there is over HAProxy at all. null where a figure is missing.
export function ratiosToFloor(summaries) {
  const find = (path, conns, target) => summaries.find((s) => s.path === path && s.conns === conns && s.target === target);
  return summaries
    .filter((f) => f.target === 'floor')
    .map((f) => {
      const u = find(f.path, f.conns, 'uproxy');
      const h = find(f.path, f.conns, 'haproxy');
      return {
        path: f.path,
        conns: f.conns,
        uproxyRps: ratio(u?.rps.median, f.rps.median),
        uproxyReqPerCoreSecond: ratio(u?.reqPerCoreSecond, f.reqPerCoreSecond),
        floorToHaproxyReqPerCoreSecond: ratio(f.reqPerCoreSecond, h?.reqPerCoreSecond),
      };
    });
}

const fmtInt = (v) => (v === null || v === undefined ? '-' : Math.round(v).toLocaleString('en-US'));
const fmt = (v, digits = 2) => (v === null || v === undefined ? '-' : v.toFixed(digits));
const mb = (kib) => (kib === null || kib === undefined ? '-' : (kib / 1024).toFixed(1));

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => (i < Math.min(2, cells.length - 1) ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function renderTables(summaries, ratios, floorRatios, idle) {
  const out = [];
  const paths = [...new Set(summaries.map((s) => s.path))];
  for (const path of paths) {
    out.push(`\n== ${PATH_TITLES[path] ?? path} ==`);
    const rows = [];
    const ofPath = summaries.filter((x) => x.path === path);
    for (const conns of [...new Set(ofPath.map((x) => x.conns))]) {
      for (const s of ofPath.filter((x) => x.conns === conns)) {
        rows.push([
          s.conns,
          s.target,
          fmtInt(s.rps.median),
          `${fmtInt(s.rps.min)}-${fmtInt(s.rps.max)}`,
          fmt(s.rps.spreadPct, 1),
          fmt(s.proxyCpuPct, 0),
          fmt(s.proxyUserPct, 0),
          fmtInt(s.reqPerCoreSecond),
          fmt(s.p50Ms, 3),
          fmt(s.p99Ms, 3),
          s.errors,
          mb(s.rssLoadKiB),
          fmt(s.loadCorePct, 0),
          `${s.noisyRuns}/${s.reps}${s.retries ? ` (${s.retries} rerun)` : ''}`,
        ]);
      }
      const r = ratios.perRun.find((x) => x.path === path && x.conns === conns);
      if (r) {
        rows.push(['', 'uproxy÷haproxy', fmt(r.rps), '', '', fmt(r.proxyCpuPct), '', fmt(r.reqPerCoreSecond), fmt(r.p50Ms), fmt(r.p99Ms), '', fmt(r.rssLoadKiB), '', '']);
      }
      const f = floorRatios.find((x) => x.path === path && x.conns === conns);
      if (f) {
        rows.push(['', 'uproxy÷floor', fmt(f.uproxyRps), '', '', '', '', fmt(f.uproxyReqPerCoreSecond), '', '', '', '', '', '']);
        rows.push(['', 'floor÷haproxy', '', '', '', '', '', fmt(f.floorToHaproxyReqPerCoreSecond), '', '', '', '', '', '']);
      }
    }
    out.push(
      table(
        ['conns', 'target', 'req/s', 'min-max', 'spread%', 'cpu%', 'user%', 'req/core-s', 'p50 ms', 'p99 ms', 'errors', 'RSS MB', 'load-core%', 'noisy'],
        rows,
      ),
    );
    const resumed = ofPath.filter((x) => x.resumedPct !== undefined);
    if (resumed.length) out.push(`resumed handshakes: ${resumed.map((x) => `${x.target} ${fmt(x.resumedPct, 1)}%`).join(', ')}`);
  }
  if (Object.keys(idle).length) {
    out.push('\n== proxy RSS idle (after start and sanity check) ==');
    out.push(
      table(
        ['target', 'RSS MB'],
        [
          ...Object.entries(idle).map(([t, kib]) => [t, mb(kib)]),
          ...(ratios.rssIdle !== null ? [['uproxy÷haproxy', fmt(ratios.rssIdle)]] : []),
        ],
      ),
    );
  }
  return out.join('\n');
}

// The issue's TLS targets, checked against one run: per-core figures ≥ 1.25 × HAProxy's on every
// TLS path, p99 ≤ HAProxy's, RSS with the idle TLS connections ≤ 1/4 of HAProxy's. Lines only
// for what the run measured.
export const TLS_TARGETS = { reqPerCoreSecond: 1.25, p99: 1, idleRss: 0.25 };

export function renderTlsVerdicts(summaries, idleConnections = []) {
  const rows = [];
  const find = (path, conns, target) => summaries.find((s) => s.path === path && s.conns === conns && s.target === target);
  const verdict = (ok) => (ok === null ? '-' : ok ? 'met' : 'NOT met');
  for (const u of summaries.filter((s) => s.target === 'uproxy' && s.path.startsWith('tls'))) {
    const h = find(u.path, u.conns, 'haproxy');
    const n = find(u.path, u.conns, 'nginx');
    const r = ratio(u.reqPerCoreSecond, h?.reqPerCoreSecond);
    const p = ratio(u.p99Ms, h?.p99Ms);
    rows.push([
      u.path,
      u.conns,
      fmtInt(u.reqPerCoreSecond),
      fmtInt(h?.reqPerCoreSecond),
      fmtInt(n?.reqPerCoreSecond),
      fmt(r),
      verdict(r === null ? null : r >= TLS_TARGETS.reqPerCoreSecond),
      `${fmt(u.p99Ms, 2)} / ${fmt(h?.p99Ms, 2)} / ${fmt(n?.p99Ms, 2)}`,
      verdict(p === null ? null : p <= TLS_TARGETS.p99),
    ]);
  }
  const held = (t) => idleConnections.find((r) => r.tls && r.target === t && !r.error);
  const [u, h, n] = ['uproxy', 'haproxy', 'nginx'].map(held);
  const out = [];
  if (rows.length) {
    out.push(`\n== TLS targets (req/core-s ≥ ${TLS_TARGETS.reqPerCoreSecond} × HAProxy's, p99 ≤ HAProxy's) ==`);
    out.push(table(['path', 'conns', 'uproxy req/core-s', 'haproxy', 'nginx', 'uproxy÷haproxy', 'per-core', 'p99 ms uproxy / haproxy / nginx', 'p99'], rows));
  }
  if (u && h) {
    const r = u.rssHeldKiB / h.rssHeldKiB;
    out.push(
      `idle TLS RSS: uproxy ${mb(u.rssHeldKiB)} MB (${u.held} conns), haproxy ${mb(h.rssHeldKiB)} MB (${h.held})` +
        `${n ? `, nginx ${mb(n.rssHeldKiB)} MB (${n.held})` : ''}; uproxy÷haproxy ${fmt(r)} (target ≤ ${TLS_TARGETS.idleRss}: ${verdict(r <= TLS_TARGETS.idleRss)})`,
    );
  }
  return out.join('\n');
}
