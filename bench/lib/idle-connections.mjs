// How much memory a proxy needs to hold many idle keep-alive client connections: a fresh
// instance of each proxy, 10,000 connections that have each completed one request, RSS read
// from /proc/<pid>/status while they are held. Plain HTTP, then TLS (each connection a full
// handshake with the run's certificate, then one request).
import { join } from 'node:path';
import { HAPROXY_MAXCONN } from './configs.mjs';
import { LOAD_CPU, sleep, startPinned, stop } from './processes.mjs';
import { rssKiB } from './procfs.mjs';
import { waitUntilForwarding } from './sanity.mjs';
import { starters, TLS_TARGET_NAMES } from './targets.mjs';
import { TLS_NAME } from './tls.mjs';

const CLIENT = join(import.meta.dirname, 'idle-client.mjs');

function firstLine(stream, timeoutMs) {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`idle client gave no report within ${timeoutMs} ms`)), timeoutMs);
    stream.on('data', (chunk) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline >= 0) {
        clearTimeout(timer);
        resolve(buffered.slice(0, newline));
      }
    });
    stream.once('end', () => reject(new Error('idle client exited without a report')));
  });
}

async function holdIdle(ctx, name, count, tls) {
  const target = await starters[name](ctx, { tls });
  let client;
  try {
    await waitUntilForwarding(target, ctx.token);
    const rssIdleKiB = rssKiB(target.pids());
    client = startPinned('idle client', LOAD_CPU, ['node', CLIENT], {
      pipe: true,
      logFile: join(ctx.dir, `idle-client-${name}${tls ? '-tls' : ''}.log`),
      env: {
        PORT: String(target.port),
        COUNT: String(count),
        BENCH_TOKEN: ctx.token,
        HOLD_MS: '240000',
        ...(tls ? { CA_FILE: ctx.tls.cert, TLS_NAME } : {}),
      },
    });
    // 10,000 TLS handshakes on one core take Node tens of seconds.
    const report = JSON.parse(await firstLine(client.child.stdout, 200000));
    // Let the proxy settle (lazy frees, timers) before reading its memory.
    await sleep(1000);
    const rssHeldKiB = rssKiB(target.pids());
    return {
      target: name,
      tls,
      requested: count,
      held: report.held,
      failed: report.failed,
      rssIdleKiB,
      rssHeldKiB,
      bytesPerConnection: report.held ? Math.round(((rssHeldKiB - rssIdleKiB) * 1024) / report.held) : null,
    };
  } finally {
    await stop(client);
    await target.stop();
  }
}

export async function runIdleConnections(ctx, proxies, opts, log) {
  const count = 10000;
  const results = [];
  const kinds = [
    ...(opts.skip.has('plain') ? [] : [{ tls: false, names: proxies }]),
    ...(opts.skip.has('tls') || !ctx.tls ? [] : [{ tls: true, names: proxies.filter((p) => TLS_TARGET_NAMES.includes(p)) }]),
  ];
  for (const { tls, names } of kinds) {
    log(`\n== ${count.toLocaleString('en-US')} idle keep-alive ${tls ? 'TLS' : 'plain-HTTP'} client connections (fresh instance each) ==`);
    if (names.includes('haproxy')) log(`  (haproxy: ${HAPROXY_MAXCONN}, its maxconn under this machine's hard fd limit of 20,000)`);
    for (const name of names) {
      try {
        const r = await holdIdle(ctx, name, name === 'haproxy' ? Math.min(count, HAPROXY_MAXCONN) : count, tls);
        results.push(r);
        log(
          `  ${name.padEnd(8)} held ${r.held}/${r.requested} (failed ${r.failed})  RSS idle ${(r.rssIdleKiB / 1024).toFixed(1)} MB` +
            ` -> held ${(r.rssHeldKiB / 1024).toFixed(1)} MB  (~${r.bytesPerConnection ?? '-'} B/conn)`,
        );
      } catch (err) {
        results.push({ target: name, tls, error: err.message });
        log(`  ${name}${tls ? ' (TLS)' : ''}: ${err.message}`);
      }
    }
    const held = (t) => results.find((r) => r.target === t && r.tls === tls && !r.error);
    const u = held('uproxy');
    const h = held('haproxy');
    if (u && h) log(`  uproxy÷haproxy: RSS held ${(u.rssHeldKiB / h.rssHeldKiB).toFixed(2)}, per connection ${u.bytesPerConnection && h.bytesPerConnection ? (u.bytesPerConnection / h.bytesPerConnection).toFixed(2) : '-'}`);
  }
  return results;
}
