import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchStats as fetchAdminStats } from '../../../cli/stats/client.js';
import type { ProxyStats } from '../../../cli/stats/schema.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The binary under test: UPROXY_PROXY_BIN (e.g. the asan build) or the default build. */
export const proxyBin = process.env.UPROXY_PROXY_BIN
  ? path.resolve(process.env.UPROXY_PROXY_BIN)
  : path.join(repo, 'proxy/build/uproxy-proxy');

export const sha256hex = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

export const CLIENT_TOKEN = 'client-secret-0123456789';
export const ADMIN_TOKEN = 'admin-secret-9876543210';

export interface ProxyOptions {
  backends: { name: string; address: string; weight?: number }[];
  algorithm?: 'round-robin' | 'least-conn' | 'p2c';
  tokens?: { name: string; secret: string }[];
  /** Extra flags, e.g. ['--shutdown-timeout-ms', '5000']. */
  args?: string[];
  /** Wait until this many backends are up (default: all). */
  waitUp?: number;
  /** Run the proxy under `ulimit -n` with this many descriptors. */
  fdLimit?: number;
}

export interface RunningProxy {
  port: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  child: ChildProcess;
  output(): string;
  stats(): Promise<ProxyStats>;
  /** SIGTERM, then wait for exit; a non-zero exit (e.g. a sanitizer report) throws. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

/** A port that was free a moment ago (the proxy cannot take port 0: the CLI needs to know it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export function runProxyRaw(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(proxyBin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    // The proxy exits without reading stdin unless --hash-stdin: a closed pipe is expected.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

async function pollUntil<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** The real proxy's /stats through the CLI's own admin client, so it is parsed with the CLI's schema. */
export function fetchStats(adminUrl: string): Promise<ProxyStats> {
  return fetchAdminStats({ url: adminUrl, token: ADMIN_TOKEN });
}

async function spawnOnce(opts: ProxyOptions): Promise<RunningProxy | 'port-taken'> {
  const port = await freePort();
  const adminPort = await freePort();
  const tokens = opts.tokens ?? [{ name: 'default', secret: CLIENT_TOKEN }];
  const args = [
    '--listen', `127.0.0.1:${port}`,
    '--admin', `127.0.0.1:${adminPort}`,
    '--admin-token-sha256', sha256hex(ADMIN_TOKEN),
    '--algorithm', opts.algorithm ?? 'round-robin',
    '--health-interval-ms', '200',
    ...tokens.flatMap((t) => ['--token', `${t.name}:${sha256hex(t.secret)}`]),
    ...opts.backends.flatMap((b) => ['--backend', `${b.name}=${b.address}${b.weight ? `,weight=${b.weight}` : ''}`]),
    ...(opts.args ?? []),
  ];
  // With a descriptor limit, sh sets it and execs the proxy, so child.pid is the proxy's pid.
  const child = opts.fdLimit
    ? spawn('/bin/sh', ['-c', `ulimit -n ${opts.fdLimit} && exec "$0" "$@"`, proxyBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(proxyBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${port}`;
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const proxy: RunningProxy = {
    port, adminPort, url, adminUrl, child, exited,
    output: () => out,
    stats: () => fetchStats(adminUrl),
    stop: async () => {
      if (!gone) child.kill('SIGTERM');
      const timer = setTimeout(() => { if (!gone) child.kill('SIGKILL'); }, 15_000);
      const code = await exited;
      clearTimeout(timer);
      if (code !== 0) throw new Error(`proxy exited with ${code}:\n${out}`);
      return code;
    },
  };
  const wantUp = opts.waitUp ?? opts.backends.length;
  try {
    await pollUntil('the proxy to serve /stats with its backends up', async () => {
      if (gone) throw new Error(`proxy exited: ${out}`);
      const s = await proxy.stats();
      return s.backends.filter((b) => b.state === 'up').length >= wantUp ? s : undefined;
    }, 20_000);
  } catch (e) {
    await proxy.stop().catch(() => undefined);
    if (/Address already in use/.test(out)) return 'port-taken';
    throw e;
  }
  return proxy;
}

/** Starts the proxy on fresh ports and waits until it serves with its backends up. */
export async function startProxy(opts: ProxyOptions): Promise<RunningProxy> {
  if (!existsSync(proxyBin)) throw new Error(`${proxyBin} is missing: run make -C proxy first`);
  for (let attempt = 0; attempt < 5; attempt++) {
    const p = await spawnOnce(opts);
    if (p !== 'port-taken') return p;
  }
  throw new Error('could not find free ports for the proxy after 5 attempts');
}

/** Sends raw bytes on one connection and collects everything until the proxy closes or `until` matches. */
export function rawExchange(port: number, data: string | Buffer, until?: (got: string) => boolean, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`raw exchange timed out; got: ${got}`)); }, timeoutMs);
    const done = (): void => { clearTimeout(timer); sock.destroy(); resolve(got); };
    sock.on('connect', () => sock.write(data));
    sock.on('data', (d) => { got += d.toString('latin1'); if (until?.(got)) done(); });
    sock.on('end', done);
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** Splits raw HTTP/1.1 responses with Content-Length bodies. */
export function splitResponses(raw: string): { status: number; headers: Record<string, string>; body: string }[] {
  const out: { status: number; headers: Record<string, string>; body: string }[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? '0');
    out.push({ status: Number(statusLine!.split(' ')[1]), headers, body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}
