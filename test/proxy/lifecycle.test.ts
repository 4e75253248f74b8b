import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { ADMIN_TOKEN, CLIENT_TOKEN, fetchStats, freePort, runProxyRaw, sha256hex, startProxy } from './support/proxy.js';

const auth = { 'x-auth-token': CLIENT_TOKEN };

describe('proxy: shutdown', () => {
  let backend: TestBackend;
  beforeAll(async () => { backend = await startBackend('solo'); });
  afterAll(async () => { await backend?.close(); });

  it('on SIGTERM stops accepting, finishes an in-flight slow request, then exits 0', async () => {
    const proxy = await startProxy({ backends: [{ name: 'solo', address: backend.address }] });
    const pending = request(`${proxy.url}/slow?ms=1500`, { headers: auth });
    const deadline = Date.now() + 10_000;
    while (!backend.seen.some((s) => s.url.startsWith('/slow')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(backend.seen.some((s) => s.url.startsWith('/slow'))).toBe(true);

    proxy.child.kill('SIGTERM');
    // The listener closes at once: new clients are refused while the slow request drains.
    const refusedDeadline = Date.now() + 5_000;
    let refused = false;
    while (!refused && Date.now() < refusedDeadline) {
      refused = await new Promise<boolean>((resolve) => {
        const s = net.connect(proxy.port, '127.0.0.1');
        s.on('connect', () => { s.destroy(); resolve(false); });
        s.on('error', () => resolve(true));
      });
      if (!refused) await new Promise((r) => setTimeout(r, 20));
    }
    expect(refused).toBe(true);

    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.headers.connection).toBe('close');
    expect(((await res.body.json()) as { url: string }).url).toBe('/slow?ms=1500');
    expect(await proxy.exited).toBe(0);
    expect(proxy.output()).toMatch(/event=shutdown result=drained/);
  });

  it('drains on an authenticated POST /shutdown as on SIGTERM, and leaves no connection open on the backend', async () => {
    const proxy = await startProxy({ backends: [{ name: 'solo', address: backend.address }] });
    // Warm the pool with several upstream connections, then keep one request in flight.
    await Promise.all(Array.from({ length: 8 }, () => request(`${proxy.url}/slow?ms=100`, { headers: auth }).then((r) => r.body.dump())));
    expect((await proxy.stats()).backends[0]!.idle_connections).toBeGreaterThan(1);
    const pending = request(`${proxy.url}/slow?ms=800`, { headers: auth });
    const deadline = Date.now() + 10_000;
    while ((await proxy.stats()).requests.in_flight < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

    const anonymous = await request(`${proxy.adminUrl}/shutdown`, { method: 'POST' });
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.dump();
    const res = await request(`${proxy.adminUrl}/shutdown`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.statusCode).toBe(202);
    expect(await res.body.json()).toEqual({ status: 'draining' });

    const slow = await pending;
    expect(slow.statusCode).toBe(200);
    expect(slow.headers.connection).toBe('close');
    await slow.body.dump();
    expect(await proxy.exited).toBe(0);
    expect(proxy.output()).toMatch(/event=shutdown_requested via=admin/);
    expect(proxy.output()).toMatch(/event=shutdown result=drained/);
    // Every upstream connection ended with a FIN the backend saw, pooled ones included.
    let open = await backend.openConnections();
    for (let i = 0; i < 50 && open > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      open = await backend.openConnections();
    }
    expect(open).toBe(0);
  });

  it('exits at the deadline when a request outlives it', async () => {
    const proxy = await startProxy({ backends: [{ name: 'solo', address: backend.address }], args: ['--shutdown-timeout-ms', '300'] });
    const pending = request(`${proxy.url}/slow?ms=5000`, { headers: auth }).catch((e: Error) => e);
    const deadline = Date.now() + 10_000;
    while ((await proxy.stats()).requests.in_flight < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    proxy.child.kill('SIGTERM');
    expect(await proxy.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(proxy.output()).toMatch(/event=shutdown result=deadline/);
    expect(await pending).toBeInstanceOf(Error);
  });
});

describe('proxy: vanished peers', () => {
  it('runs TCP keepalive on client connections and on upstream connections', async () => {
    const backend = await startBackend('ka');
    const proxy = await startProxy({ backends: [{ name: 'ka', address: backend.address }] });
    const agent = new Agent({ connections: 1, keepAliveTimeout: 30_000 });
    try {
      const res = await request(`${proxy.url}/x`, { headers: auth, dispatcher: agent });
      await res.body.dump();
      // ss shows a keepalive timer on the proxy's side of each connection: its accepted client
      // socket (source port = the proxy's) and its pooled upstream socket (destination = the backend).
      const sockets = (filter: string): string => execFileSync('ss', ['-tnoH', 'state', 'established', filter], { encoding: 'utf8' });
      expect(sockets(`( sport = :${proxy.port} )`)).toMatch(/timer:\(keepalive,/);
      expect(sockets(`( dport = :${backend.port} )`)).toMatch(/timer:\(keepalive,/);
    } finally {
      await agent.close();
      await proxy.stop();
      await backend.close();
    }
  });
});

/** User + system CPU time of a process, in clock ticks (the test reads /proc; the proxy never does). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

describe('proxy: out of file descriptors', () => {
  it('pauses accepting instead of spinning, and recovers when descriptors free up', async () => {
    const backend = await startBackend('fd');
    const proxy = await startProxy({ backends: [{ name: 'fd', address: backend.address }], fdLimit: 24 });
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const s = net.connect(proxy.port, '127.0.0.1');
        s.on('error', () => undefined);
        held.push(s);
      }
      const deadline = Date.now() + 10_000;
      while (!/event=accept_paused/.test(proxy.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // glibc says "Too many open files", musl "No file descriptors available".
      expect(proxy.output()).toMatch(/event=accept_paused error="(Too many open files|No file descriptors available)"/);
      // Clients keep waiting in the backlog; a proxy retrying accept in a loop would burn a core.
      const pauses = (): number => proxy.output().match(/event=accept_paused/g)?.length ?? 0;
      const before = cpuTicks(proxy.child.pid!);
      const pausesBefore = pauses();
      await new Promise((r) => setTimeout(r, 1000));
      expect(cpuTicks(proxy.child.pid!) - before).toBeLessThan(50);
      // The backoff doubles from 10 ms: a handful of retries per second, not thousands.
      expect(pauses() - pausesBefore).toBeLessThan(20);
      for (const s of held) s.destroy();
      let status = 0;
      const recover = Date.now() + 10_000;
      while (status !== 200 && Date.now() < recover) {
        status = await request(`${proxy.url}/again`, { headers: auth, reset: true })
          .then(async (r) => { await r.body.dump(); return r.statusCode; }, () => 0);
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(200);
    } finally {
      for (const s of held) s.destroy();
      await proxy.stop();
      await backend.close();
    }
  });
});

describe('proxy: configuration', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'uproxy-proxy-test-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const hash = sha256hex('t');
  const good = ['--backend', 'b=127.0.0.1:9', '--token', `n:${hash}`];
  const cases: [string, string[], RegExp][] = [
    ['unknown flag', ['--frobnicate', '1', ...good], /--frobnicate: unknown option/],
    ['missing value', [...good, '--listen'], /--listen: missing value/],
    ['bad listen address', ['--listen', 'nowhere', ...good], /--listen: 'nowhere' is not a listen address/],
    ['bad backend', ['--backend', 'b:127.0.0.1', '--token', `n:${hash}`], /--backend: 'b:127.0.0.1': expected NAME=HOST:PORT/],
    ['bad weight', ['--backend', 'b=127.0.0.1:9,weight=0', '--token', `n:${hash}`], /--backend: .*weight must be/],
    ['duplicate backend', [...good, '--backend', 'b=127.0.0.1:10'], /--backend: backend name 'b' is used twice/],
    ['plaintext token', ['--backend', 'b=127.0.0.1:9', '--token', 'n:secret'], /--token: .*SHA-256 as 64 hex digits/],
    ['no token', ['--backend', 'b=127.0.0.1:9'], /--token: at least one client token is required/],
    ['no backend and no admin listener', ['--token', `n:${hash}`], /--backend: at least one backend is required \(NAME=HOST:PORT\), or an admin listener \(--admin\)/],
    ['bad algorithm', [...good, '--algorithm', 'random'], /--algorithm: 'random' is not an algorithm/],
    ['bad number', [...good, '--idle-timeout-ms', '-5'], /--idle-timeout-ms: '-5' must be a whole number/],
    ['admin without hash', [...good, '--admin', '127.0.0.1:9999'], /--admin: an admin listener needs --admin-token-sha256/],
    ['bad trusted proxy', [...good, '--trusted-proxy', '10.0.0.0/33'], /--trusted-proxy: .*prefix length/],
    ['missing tokens file', ['--backend', 'b=127.0.0.1:9', '--tokens-file', '/nonexistent/tokens'], /--tokens-file: cannot open '\/nonexistent\/tokens'/],
  ];
  for (const [what, args, message] of cases) {
    it(`exits 2 with one clear line for: ${what}`, async () => {
      const r = await runProxyRaw(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^uproxy-proxy: /);
    });
  }

  it('names the file and line of a bad tokens-file entry', async () => {
    const file = path.join(dir, 'bad-tokens');
    writeFileSync(file, `# comment\nok:${hash}\nbroken-line\n`);
    const r = await runProxyRaw(['--backend', 'b=127.0.0.1:9', '--tokens-file', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file} line 3`);
  });

  it('reports where a --config file is wrong', async () => {
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, '{"listen": "127.0.0.1:1", "colour": "blue"}');
    const r = await runProxyRaw(['--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--config: .*bad\.json: unknown key "colour"/);
  });

  it('runs from a --config JSON file and a tokens file (same keys as the flags)', async () => {
    const backend = await startBackend('from-config');
    try {
      const tokens = path.join(dir, 'tokens');
      writeFileSync(tokens, `# client tokens\nalpha:${sha256hex('alpha-secret')}\n\nbeta:${sha256hex('beta-secret')}\n`);
      const port = await freePort();
      const adminPort = await freePort();
      const file = path.join(dir, 'proxy.json');
      writeFileSync(file, JSON.stringify({
        listen: `127.0.0.1:${port}`, admin: `127.0.0.1:${adminPort}`,
        'admin-token-sha256': sha256hex('cfg-admin'),
        backend: [`from-config=${backend.address},weight=3`],
        'tokens-file': tokens, algorithm: 'least-conn', 'health-interval-ms': 200,
      }));
      const { spawn } = await import('node:child_process');
      const { proxyBin } = await import('./support/proxy.js');
      const child = spawn(proxyBin, ['--config', file], { stdio: 'ignore' });
      try {
        const deadline = Date.now() + 20_000;
        let up = false;
        while (!up && Date.now() < deadline) {
          try {
            const res = await request(`http://127.0.0.1:${adminPort}/stats`, { headers: { authorization: 'Bearer cfg-admin' } });
            const s = await res.body.json() as { backends: { state: string }[] };
            up = s.backends[0]?.state === 'up';
          } catch { /* not listening yet */ }
          if (!up) await new Promise((r) => setTimeout(r, 50));
        }
        expect(up).toBe(true);
        const res = await request(`http://127.0.0.1:${port}/cfg`, { headers: { 'x-auth-token': 'beta-secret' } });
        expect(res.statusCode).toBe(200);
        await res.body.dump();
        const stats = await (await request(`http://127.0.0.1:${adminPort}/stats`, { headers: { authorization: 'Bearer cfg-admin' } })).body.json() as {
          algorithm: string; auth: { by_token: Record<string, number> }; backends: { weight: number }[];
        };
        expect(stats.algorithm).toBe('least-conn');
        expect(stats.auth.by_token).toEqual({ alpha: 0, beta: 1 });
        expect(stats.backends[0]!.weight).toBe(3);
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.on('exit', r));
      }
    } finally {
      await backend.close();
    }
  });

  it('hashes tokens from stdin with SHA-256 (FIPS 180-4 test vectors)', async () => {
    const vectors: [string, string][] = [
      ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
      ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
      ['abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq', '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
      ['a'.repeat(1_000_000), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0'],
    ];
    for (const [input, digest] of vectors) {
      const r = await runProxyRaw(['--hash-stdin'], input);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(digest);
    }
    // Lengths around the 55/56/64-byte padding boundaries, checked against Node's own SHA-256.
    for (const len of [55, 56, 63, 64, 65, 119, 120, 128]) {
      const input = 'x'.repeat(len);
      expect((await runProxyRaw(['--hash-stdin'], input)).stdout.trim()).toBe(sha256hex(input));
    }
  });

  it('never writes the plaintext token to its logs', async () => {
    const backend = await startBackend('logs');
    const log = path.join(dir, 'access.log');
    const proxy = await startProxy({ backends: [{ name: 'logs', address: backend.address }], args: ['--access-log', log] });
    try {
      for (const headers of [auth, { 'x-auth-token': 'wrong-secret-value' }, {}]) {
        const res = await request(`${proxy.url}/logged?q=1`, { headers });
        await res.body.dump();
      }
      await fetchStats(proxy.adminUrl);
    } finally {
      await proxy.stop();
      await backend.close();
    }
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.status)).toEqual([200, 401, 401]);
    expect(Object.keys(lines[0]!)).toEqual(['time', 'token', 'method', 'path', 'status', 'backend', 'bytes', 'latency_ms']);
    expect(lines[0]).toMatchObject({ token: 'default', method: 'GET', path: '/logged?q=1', backend: 'logs' });
    expect(Date.parse(lines[0]!.time as string)).toBeGreaterThan(Date.now() - 60_000);
    expect(lines[0]!.bytes).toBeGreaterThan(0);
    expect(lines[1]).toMatchObject({ token: null, backend: null, status: 401 });
    const everything = readFileSync(log, 'utf8') + proxy.output();
    expect(everything).not.toContain(CLIENT_TOKEN);
    expect(everything).not.toContain('wrong-secret-value');
    expect(proxy.output()).toMatch(/event=start /);
    expect(proxy.output()).toMatch(/event=listen role=client /);
    expect(proxy.output()).toMatch(/event=backend_state backend=logs .*to=up/);
  });
});
