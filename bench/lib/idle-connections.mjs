// How much memory a proxy needs to hold many idle keep-alive client connections: a fresh
// instance of each proxy, 10,000 connections that have each completed one request, RSS read
// from /proc/<pid>/status while they are held.
import { join } from 'node:path';
import { HAPROXY_MAXCONN } from './configs.mjs';
import { LOAD_CPU, sleep, startPinned, stop } from './processes.mjs';
import { rssKiB } from './procfs.mjs';
import { waitUntilForwarding } from './sanity.mjs';
import { starters } from './targets.mjs';

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

async function holdIdle(ctx, name, count) {
  const target = await starters[name](ctx);
  let client;
  try {
    await waitUntilForwarding(target, ctx.token);
    const rssIdleKiB = rssKiB(target.pids());
    client = startPinned('idle client', LOAD_CPU, ['node', CLIENT], {
      pipe: true,
      logFile: join(ctx.dir, `idle-client-${name}.log`),
      env: { PORT: String(target.port), COUNT: String(count), BENCH_TOKEN: ctx.token, HOLD_MS: '120000' },
    });
    const report = JSON.parse(await firstLine(client.child.stdout, 120000));
    // Let the proxy settle (lazy frees, timers) before reading its memory.
    await sleep(1000);
    const rssHeldKiB = rssKiB(target.pids());
    return {
      target: name,
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
  log(`\n== ${count.toLocaleString('en-US')} idle keep-alive client connections (fresh instance each) ==`);
  if (proxies.includes('haproxy')) log(`  (haproxy: ${HAPROXY_MAXCONN}, its maxconn under this machine's hard fd limit of 20,000)`);
  const results = [];
  for (const name of proxies) {
    try {
      const r = await holdIdle(ctx, name, name === 'haproxy' ? Math.min(count, HAPROXY_MAXCONN) : count);
      results.push(r);
      log(
        `  ${name.padEnd(8)} held ${r.held}/${r.requested} (failed ${r.failed})  RSS idle ${(r.rssIdleKiB / 1024).toFixed(1)} MB` +
          ` -> held ${(r.rssHeldKiB / 1024).toFixed(1)} MB  (~${r.bytesPerConnection ?? '-'} B/conn)`,
      );
    } catch (err) {
      results.push({ target: name, error: err.message });
      log(`  ${name}: ${err.message}`);
    }
  }
  return results;
}
