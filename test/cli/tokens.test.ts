import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initProject, projectClient, uproxy } from './run.js';

/**
 * `uproxy token add|revoke|list` against a real host fleet serving HTTPS with its project CA:
 * the proxy takes each change through its admin API while a keep-alive client with another
 * token keeps going, and never restarts. Traffic goes to 127.0.0.1 only and is bounded.
 */

interface State {
  proxy: { listen: string; admin: string };
  machines: { name: string; role: string; pid: number | null }[];
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

let root: string;
let dir: string;
let agent: Agent;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-tokens-'));
  dir = await initProject(root, 'tok', 2);
  ({ agent } = projectClient(dir, { connections: 4 }));
  const up = await uproxy(['up'], dir);
  expect(up.exitCode, up.stderr).toBe(0);
}, 240_000);

afterAll(async () => {
  await uproxy(['down', '--force'], dir);
  await agent?.close();
  rmSync(root, { recursive: true, force: true });
});

const state = (): State => JSON.parse(readFileSync(join(dir, '.uproxy/state.json'), 'utf8')) as State;
const proxyPid = (): number | null => state().machines.find((m) => m.role === 'proxy')!.pid;
const clientToken = (): string => readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();

async function get(token: string): Promise<{ status: number; text: string }> {
  const res = await request(`https://localhost:${state().proxy.listen.split(':')[1]}/`, { headers: { 'x-auth-token': token }, dispatcher: agent });
  return { status: res.statusCode, text: await res.body.text() };
}

async function stats(): Promise<{ pid: number; auth: { denied: { expired?: number } } }> {
  const res = await request(`http://${state().proxy.admin}/stats`, { headers: { authorization: `Bearer ${readFileSync(join(dir, '.uproxy/admin-token'), 'utf8').trim()}` } });
  return (await res.body.json()) as { pid: number; auth: { denied: { expired?: number } } };
}

/** A keep-alive client on the default token, one request after another, until stopped (at most 20 s). */
function steadyClient(): { stop: () => Promise<{ ok: number; failures: string[] }> } {
  const result = { ok: 0, failures: [] as string[] };
  let stopped = false;
  const deadline = Date.now() + 20_000;
  const token = clientToken();
  const running = (async () => {
    while (!stopped && Date.now() < deadline) {
      try {
        const { status, text } = await get(token);
        if (status === 200) result.ok++;
        else result.failures.push(`${status} ${text}`);
      } catch (error) {
        result.failures.push(String(error));
      }
    }
  })();
  return { stop: async () => ((stopped = true), await running, result) };
}

/** The token `token add` printed: the line after the one that says it is shown once. */
function printedToken(stdout: string): string {
  const lines = stdout.split('\n');
  return lines[lines.findIndex((l) => l.includes('shown once')) + 1]!.trim();
}

interface Listed {
  tokens: { name: string; created?: string; expires?: string; expired: boolean; requests: number | null; lastUsed: number | null }[];
  running: boolean;
}
async function list(): Promise<Listed> {
  const result = await uproxy(['token', 'list', '--json'], dir);
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Listed;
}

describe('uproxy token on a running host fleet', () => {
  it('adds and revokes a token without a proxy restart or a failed request of another client', { timeout: 120_000 }, async () => {
    // The machine's recorded pid and the proxy's own (a supervisor may stand between them): neither changes.
    const pid = proxyPid();
    const servingPid = (await stats()).pid;
    const client = steadyClient();
    const added = await uproxy(['token', 'add', 'ci'], dir);
    expect(added.exitCode, added.stderr).toBe(0);
    expect(added.stdout).toContain('The running proxy accepts it now (no restart)');
    const token = printedToken(added.stdout);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await get(token)).toMatchObject({ status: 200 });

    const config = readFileSync(join(dir, 'uproxy.json'), 'utf8');
    expect(config).not.toContain(token);
    const entry = (JSON.parse(config) as { proxy: { tokens: { name: string; sha256: string; created?: string }[] } }).proxy.tokens.find((t) => t.name === 'ci')!;
    expect(entry.sha256).toBe(sha256(token));
    expect(Date.parse(entry.created!)).toBeGreaterThan(Date.now() - 120_000);

    const listed = (await list()).tokens.find((t) => t.name === 'ci')!;
    expect(listed.requests).toBe(1);
    expect(listed.lastUsed).toBeGreaterThan(Date.now() / 1000 - 60);
    const table = await uproxy(['token', 'list'], dir);
    expect(table.stdout).toMatch(/^ci\s+\S+Z\s+never\s+1\s+\S+Z/m);

    // The printed token is nowhere else: not in a log, a state file, or any process's command line.
    for (const file of readdirSync(join(dir, '.uproxy'), { recursive: true, withFileTypes: true })) {
      if (file.isFile()) expect(readFileSync(join(file.parentPath, file.name)).includes(token), join(file.parentPath, file.name)).toBe(false);
    }
    for (const entry of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      expect(cmdline.includes(token), `process ${entry}`).toBe(false);
    }

    // `up` on the unchanged fleet keeps the proxy and the token.
    const up = await uproxy(['up'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(proxyPid()).toBe(pid);
    expect((await stats()).pid).toBe(servingPid);
    expect(await get(token)).toMatchObject({ status: 200 });

    const revoked = await uproxy(['token', 'revoke', 'ci'], dir);
    expect(revoked.exitCode, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain('The running proxy refuses it now (no restart)');
    expect(await get(token)).toEqual({ status: 401, text: '{"error":"invalid token"}' });
    expect(readFileSync(join(dir, 'uproxy.json'), 'utf8')).not.toContain('"ci"');

    const served = await client.stop();
    expect(served.failures).toEqual([]);
    expect(served.ok).toBeGreaterThan(10);
    expect(proxyPid()).toBe(pid);
    expect((await stats()).pid).toBe(servingPid);
  });

  it('refuses an expired token with its own 401 and counts it in /stats', { timeout: 60_000 }, async () => {
    const before = (await stats()).auth.denied.expired ?? 0;
    const added = await uproxy(['token', 'add', 'brief', '--expires', '3s'], dir);
    expect(added.exitCode, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/Token "brief", valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    const token = printedToken(added.stdout);
    expect(await get(token)).toMatchObject({ status: 200 });
    const deadline = Date.now() + 10_000;
    let answer = await get(token);
    while (answer.status === 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      answer = await get(token);
    }
    expect(answer).toEqual({ status: 401, text: '{"error":"token expired"}' });
    expect((await stats()).auth.denied.expired).toBe(before + 1);
    expect((await list()).tokens.find((t) => t.name === 'brief')).toMatchObject({ expired: true });
    expect((await uproxy(['token', 'list'], dir)).stdout).toMatch(/^brief .*Z \(expired\)/m);
    expect((await uproxy(['token', 'revoke', 'brief'], dir)).exitCode).toBe(0);
  });

  it('applies a token edited into uproxy.json by hand at the next up, without a restart', { timeout: 120_000 }, async () => {
    const pid = (await stats()).pid;
    const file = join(dir, 'uproxy.json');
    const config = JSON.parse(readFileSync(file, 'utf8'));
    config.proxy.tokens.push({ name: 'by-hand', sha256: sha256('by-hand-secret') });
    writeFileSync(file, JSON.stringify(config, null, 2));
    expect((await get('by-hand-secret')).status).toBe(401);
    const up = await uproxy(['up'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    expect(`${up.stdout}${up.stderr}`).toContain('add token by-hand to the proxy');
    expect((await stats()).pid).toBe(pid);
    expect((await get('by-hand-secret')).status).toBe(200);

    config.proxy.tokens = config.proxy.tokens.filter((t: { name: string }) => t.name !== 'by-hand');
    writeFileSync(file, JSON.stringify(config, null, 2));
    expect((await uproxy(['up'], dir)).exitCode).toBe(0);
    expect((await stats()).pid).toBe(pid);
    expect((await get('by-hand-secret')).status).toBe(401);
  });

  it('says what is wrong with a bad request, and never revokes the last token', async () => {
    const cases: [string[], RegExp][] = [
      [['token', 'add', 'bad name'], /token name "bad name": use 1-63 characters/],
      [['token', 'add', 'default'], /a token named "default" exists: `uproxy token revoke default` first/],
      [['token', 'add', 'x', '--expires', 'tomorrow'], /--expires: expected a duration from now \(30d, 12h, 1h30m\) or a date/],
      [['token', 'add', 'x', '--expires', '2020-01-01'], /--expires: 2020-01-01T.* is already past/],
      [['token', 'add', 'x', '--expires', '2026-02-30'], /--expires: expected a duration/],
      [['token', 'revoke', 'nope'], /no token named "nope" in uproxy.json; it has "default"/],
      [['token', 'revoke', 'default'], /"default" is the only token, and the proxy needs at least one: `uproxy token add NAME` first/],
    ];
    for (const [args, message] of cases) {
      const result = await uproxy(args, dir);
      expect(result.exitCode, args.join(' ')).toBe(1);
      expect(result.stderr).toMatch(message);
    }
    expect(JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8')).proxy.tokens.map((t: { name: string }) => t.name)).toEqual(['default']);
  });

  it('without a fleet only saves, and the next up starts the proxy with it', { timeout: 240_000 }, async () => {
    expect((await uproxy(['down'], dir)).exitCode).toBe(0);
    const added = await uproxy(['token', 'add', 'offline'], dir);
    expect(added.exitCode, added.stderr).toBe(0);
    expect(added.stdout).toContain('No fleet is running here');
    expect((await list()).running).toBe(false);
    const up = await uproxy(['up'], dir);
    expect(up.exitCode, up.stderr).toBe(0);
    expect((await get(printedToken(added.stdout))).status).toBe(200);
    expect((await get(clientToken())).status).toBe(200);
  });
});
