import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, uproxy } from './run.js';

/**
 * `uproxy logs` on a real host fleet (2 backends, HTTPS with the project CA, ports chosen at
 * `up`) with `proxy.accessLog` on, read as a user reads it: the command's own output.
 */

let root: string;
let dir: string;
let token: string;
let listen: string;
let trusting: Agent;

const PREFIXED = /^(proxy|backend-1|backend-2) *\| (.*)$/;
const OWN_TIME = /^(?:ts=|\{"time":")?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)/;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-logs-e2e-'));
  const init = await uproxy(['init', 'logged', '--backends', '2'], root);
  expect(init.exitCode, init.stderr).toBe(0);
  dir = join(root, 'logged');
  const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
  Object.assign(config.proxy, { port: 0, adminPort: 0, accessLog: true });
  writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
  token = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
  trusting = new Agent({ connect: { ca: readFileSync(join(dir, '.uproxy/tls/ca.pem'), 'utf8') } });
  const up = await uproxy(['up'], dir, 180_000);
  expect(up.exitCode, up.stderr).toBe(0);
  listen = (JSON.parse(readFileSync(join(dir, '.uproxy/state.json'), 'utf8')) as { proxy: { listen: string } }).proxy.listen;
}, 240_000);

afterAll(async () => {
  await uproxy(['down', '--force'], dir);
  await trusting.close();
  rmSync(root, { recursive: true, force: true });
});

async function get(path: string, headers: Record<string, string>): Promise<number> {
  const response = await request(`https://${listen}${path}`, { dispatcher: trusting, headers, headersTimeout: 5000, bodyTimeout: 5000 });
  await response.body.dump();
  return response.statusCode;
}

async function logs(args: readonly string[]): Promise<string[]> {
  const result = await uproxy(['logs', ...args], dir, 30_000);
  expect(result.exitCode, result.stderr).toBe(0);
  return result.stdout === '' ? [] : result.stdout.split('\n');
}

/** The access log lines `uproxy logs proxy` shows, parsed. */
async function accessLines(): Promise<Record<string, unknown>[]> {
  return (await logs(['proxy', '--no-prefix'])).filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('uproxy logs', () => {
  it('interleaves every machine by time, each line after its name and with its time', { timeout: 60_000 }, async () => {
    const lines = await logs([]);
    const parsed = lines.map((line) => {
      const match = PREFIXED.exec(line);
      expect(match, line).not.toBeNull();
      const time = OWN_TIME.exec(match![2]!)?.[1];
      expect(time, `${line}: a line without its own time`).toBeDefined();
      return { name: match![1]!, time: Date.parse(time!), line };
    });
    expect(new Set(parsed.map((p) => p.name))).toEqual(new Set(['proxy', 'backend-1', 'backend-2']));
    // Names padded to one width, as docker compose does.
    expect(lines.find((line) => line.startsWith('proxy'))).toMatch(/^proxy {5}\| ts=/);
    expect(lines.find((line) => line.startsWith('backend-1'))).toMatch(/^backend-1 \| \d{4}-.* backend backend-1 listening on 127\.0\.0\.1:\d+$/);
    const times = parsed.map((p) => p.time);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    // A backend listened before the proxy's health check found it up, and the merge shows it so.
    const first = (text: string): number => lines.findIndex((line) => line.includes(text));
    for (const name of ['backend-1', 'backend-2']) {
      expect(first(`backend ${name} listening`)).toBeGreaterThanOrEqual(0);
      expect(first(`backend ${name} listening`)).toBeLessThan(first(`event=backend_state backend=${name} `));
    }
  });

  it('shows a JSON access log line per request with the token name, never the token', { timeout: 60_000 }, async () => {
    expect(await get('/?logged=1', { 'x-auth-token': token })).toBe(200);
    expect(await get('/denied', { 'x-auth-token': 'not-the-token-0123456789' })).toBe(401);
    const deadline = Date.now() + 10_000;
    let lines = await accessLines();
    while (lines.length < 2 && Date.now() < deadline) lines = await accessLines();
    const served = lines.find((line) => line.path === '/?logged=1');
    expect(Object.keys(served!)).toEqual(['time', 'token', 'method', 'path', 'status', 'backend', 'bytes', 'latency_ms']);
    expect(served).toMatchObject({ token: 'default', method: 'GET', status: 200, backend: expect.stringMatching(/^backend-[12]$/) });
    expect(served!.bytes).toBeGreaterThan(0);
    expect(served!.latency_ms).toBeGreaterThanOrEqual(0);
    expect(Math.abs(Date.parse(served!.time as string) - Date.now())).toBeLessThan(60_000);
    expect(lines.find((line) => line.path === '/denied')).toMatchObject({ token: null, status: 401, backend: null });
    const everything = (await logs(['proxy', 'backend-1', 'backend-2'])).join('\n');
    expect(everything).not.toContain(token);
    expect(everything).not.toContain('not-the-token-0123456789');
  });

  it('takes --tail per machine, --since as a duration or a time, -t and --no-prefix', { timeout: 60_000 }, async () => {
    const all = await logs([]);
    expect(await logs(['--tail', 'all'])).toEqual(all);
    const tail = await logs(['--tail', '1']);
    expect(tail).toHaveLength(3);
    for (const name of ['proxy', 'backend-1', 'backend-2']) {
      const last = all.filter((line) => line.startsWith(`${name} `)).at(-1);
      expect(tail).toContain(last);
    }
    const text = (line: string): string => PREFIXED.exec(line)![2]!;
    expect(await logs(['-n', '2', 'proxy', '--no-prefix'])).toEqual(all.filter((line) => line.startsWith('proxy ')).slice(-2).map(text));

    expect(await logs(['--since', '10m'])).toEqual(all);
    expect(await logs(['--since', new Date(Date.now() + 60_000).toISOString()])).toEqual([]);
    const proxyLines = all.filter((line) => line.startsWith('proxy '));
    const lastTime = OWN_TIME.exec(text(proxyLines.at(-1)!))![1]!;
    const since = await logs(['proxy', '--since', lastTime, '--no-prefix']);
    expect(since.length).toBeGreaterThanOrEqual(1);
    expect(since.length).toBeLessThan(proxyLines.length);
    expect(since.at(-1)).toBe(text(proxyLines.at(-1)!));

    const bad = await uproxy(['logs', '--since', 'yesterday'], dir);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain('expected a duration (10m, 1h30m, 2d), an RFC 3339 time (2026-01-31T09:00:00Z; no zone: local time) or Unix seconds, got "yesterday"');

    const stamped = await logs(['backend-1', '-t', '--no-prefix', '--tail', '1']);
    expect(stamped).toHaveLength(1);
    expect(stamped[0]).toMatch(/^(\S+Z) \1 backend backend-1 listening/);
  });

  it('with --follow prints what machines write next, until Ctrl-C', { timeout: 60_000 }, async () => {
    const follower = spawn('node', [BIN, 'logs', '--follow', '--tail', '0'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follower.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => follower.once('exit', (code) => resolve(code)));
    try {
      // Its first read is done once it is polling; a request sent before then would be in its tail-0 window.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(out).toBe('');
      expect(await get('/?followed=1', { 'x-auth-token': token })).toBe(200);
      const deadline = Date.now() + 15_000;
      while (!out.includes('/?followed=1') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(out).toMatch(/^proxy {5}\| \{"time":"[^"]+","token":"default","method":"GET","path":"\/\?followed=1","status":200,/m);
    } finally {
      follower.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });

  it('with --follow shows a machine started meanwhile, from its first line', { timeout: 120_000 }, async () => {
    const follower = spawn('node', [BIN, 'logs', '--follow', '--tail', '0'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follower.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => follower.once('exit', (code) => resolve(code)));
    try {
      const up = await uproxy(['up', '--backends', '3'], dir, 90_000);
      expect(up.exitCode, up.stderr).toBe(0);
      const deadline = Date.now() + 15_000;
      while (!/event=backend_state backend=backend-3 .*to=up/.test(out) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      const lines = out.split('\n');
      const listening = lines.findIndex((line) => /^backend-3 \| \S+Z backend backend-3 listening on 127\.0\.0\.1:\d+$/.test(line));
      const added = lines.findIndex((line) => /^proxy {5}\| ts=.* event=backend_state backend=backend-3 .*to=up/.test(line));
      expect(listening, out).toBeGreaterThanOrEqual(0);
      expect(added, out).toBeGreaterThan(listening);
    } finally {
      follower.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });
});
