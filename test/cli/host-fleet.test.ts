import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchStats, setBackendDrain } from '../../cli/stats/client.js';
import { BIN, uproxy } from './run.js';

/**
 * The whole loop on the host runtime, with the real proxy and the real backend app, in a
 * temporary project. Ports are 0 in uproxy.json, so every listener is a free port chosen at
 * `up` and nothing collides with other test files running at the same time.
 */

interface State {
  proxy: { listen: string; admin: string };
  machines: { name: string; role: string; address: string; pid: number | null }[];
}

let root: string;
/** The suite's one project CA, copied into every project, so one client trusts every fleet's HTTPS. */
let ca: { cert: string; key: string };
let trusting: Agent;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-e2e-'));
});
afterAll(async () => {
  for (const dir of readdirSync(root)) await uproxy(['down', '--force'], join(root, dir));
  rmSync(root, { recursive: true, force: true });
});

async function newProject(name: string, edit: (config: Record<string, any>) => void = () => {}): Promise<string> {
  const init = await uproxy(['init', name, '--backends', '3'], root);
  expect(init.exitCode, init.stderr).toBe(0);
  const dir = join(root, name);
  const tlsDir = join(dir, '.uproxy/tls');
  if (ca === undefined) {
    ca = { cert: readFileSync(join(tlsDir, 'ca.pem'), 'utf8'), key: readFileSync(join(tlsDir, 'ca.key'), 'utf8') };
    trusting = new Agent({ connect: { ca: ca.cert } });
  }
  writeFileSync(join(tlsDir, 'ca.pem'), ca.cert);
  writeFileSync(join(tlsDir, 'ca.key'), ca.key, { mode: 0o600 });
  const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
  expect(config.proxy.tls).toEqual({ mode: 'local-ca' });
  Object.assign(config.proxy, { port: 0, adminPort: 0 });
  // What up does with dead machines, seen without a supervisor bringing them back first
  // (test/cli/restart.test.ts covers the restart policy).
  config.restart = 'no';
  edit(config);
  writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
  return dir;
}

function readState(dir: string): State {
  return JSON.parse(readFileSync(join(dir, '.uproxy/state.json'), 'utf8')) as State;
}

async function get(url: string, token?: string): Promise<{ status: number; body: string }> {
  const response = await request(url, { dispatcher: trusting, headers: token === undefined ? {} : { 'x-auth-token': token }, headersTimeout: 5000, bodyTimeout: 5000 });
  return { status: response.statusCode, body: await response.body.text() };
}

/** Sends `count` requests and counts which backend answered each (the page names its instance). */
async function spread(listen: string, token: string, count: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const { status, body } = await get(`https://${listen}/`, token);
    expect(status).toBe(200);
    const name = /Hello from (backend-\d+)/.exec(body)?.[1] ?? 'unnamed';
    seen[name] = (seen[name] ?? 0) + 1;
  }
  return seen;
}

/** Every live process whose command line mentions the project directory. */
function processesOf(dir: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${dir}/`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

function portIsFree(address: string): Promise<boolean> {
  const port = Number(address.split(':')[1]);
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

interface KeepAliveLoad {
  ok: () => number;
  /** Stops the clients, waits for their last requests, and returns every failure seen. */
  stop: () => Promise<{ ok: number; failures: string[] }>;
}

/**
 * Keep-alive clients on loopback sending GETs one after another (with a short pause, so a
 * loaded machine still has time for `up`) until stop(), `maxMs` or `maxRequests`.
 */
function keepAliveLoad(listen: string, token: string, opts: { clients: number; maxMs: number; maxRequests: number }): KeepAliveLoad {
  const agent = new Agent({ connections: opts.clients, keepAliveTimeout: 60_000, connect: { ca: ca.cert } });
  const deadline = Date.now() + opts.maxMs;
  const failures: string[] = [];
  let ok = 0;
  let sent = 0;
  let stopped = false;
  const client = async (): Promise<void> => {
    while (!stopped && Date.now() < deadline && sent < opts.maxRequests) {
      sent++;
      try {
        const response = await request(`https://${listen}/`, { headers: { 'x-auth-token': token }, dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000 });
        await response.body.text();
        if (response.statusCode === 200) ok++;
        else failures.push(`status ${response.statusCode}`);
      } catch (error) {
        failures.push(String(error));
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const running = Promise.all(Array.from({ length: opts.clients }, client));
  return {
    ok: () => ok,
    stop: async () => {
      stopped = true;
      await running;
      await agent.close();
      return { ok, failures };
    },
  };
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

/**
 * One fleet shared by these tests (starting it is the slow part), but no test relies on what
 * the one before it left: each first brings the fleet to the size it needs with `up`, which is
 * idempotent, and reads the state from disk. A failing test fails alone.
 */
describe('a fleet on the host runtime', () => {
  let dir: string;
  let token: string;
  beforeAll(async () => {
    dir = await newProject('fleet');
    token = readFileSync(join(dir, '.uproxy/client-token'), 'utf8').trim();
  });

  /**
   * Runs `work` while keep-alive clients send requests; they stop whatever happens (no client
   * outlives the test), and not one of their requests may have failed.
   */
  async function underLoad(listen: string, work: (load: KeepAliveLoad) => Promise<void>): Promise<void> {
    const load = keepAliveLoad(listen, token, { clients: 4, maxMs: 240_000, maxRequests: 200_000 });
    let result: { ok: number; failures: string[] };
    try {
      await work(load);
    } finally {
      result = await load.stop();
    }
    expect(result.failures.slice(0, 5), `${result.failures.length} of ${result.ok + result.failures.length} requests failed`).toEqual([]);
  }

  /** `up --backends <count>`, which must succeed; the state it leaves. */
  async function fleetOf(count: number): Promise<State> {
    const result = await uproxy(['up', '--backends', String(count)], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    return readState(dir);
  }

  it('comes up with 3 backends and prints a table and a curl line', { timeout: 240_000 }, async () => {
    const result = await uproxy(['up', '--backends', '3'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    const state = readState(dir);
    expect(state.machines.map((m) => m.name).sort()).toEqual(['backend-1', 'backend-2', 'backend-3', 'proxy']);
    expect(result.stdout).toMatch(/^NAME\s+ROLE\s+ADDRESS\s+PID\s+RESTARTS\s+STATE$/m);
    // The same STATE column as ps: process state, then the proxy's view of the machine.
    for (const m of state.machines) {
      expect(result.stdout).toMatch(new RegExp(`^${m.name}\\s+${m.role}\\s+${m.address}\\s+${m.pid}\\s+-\\s+running, ${m.role === 'proxy' ? 'serving' : 'up'}$`, 'm'));
    }
    expect(result.stdout).toContain(`curl --cacert .uproxy/tls/ca.pem -H "X-Auth-Token: $(cat .uproxy/client-token)" https://localhost:${state.proxy.listen.split(':')[1]}/`);
    expect(result.stdout + result.stderr).not.toContain(token);
    for (const m of state.machines) expect(readFileSync(`/proc/${m.pid}/cmdline`, 'utf8')).not.toContain(token);
  });

  it('spreads 300 requests evenly over the 3 backends', { timeout: 240_000 }, async () => {
    const state = await fleetOf(3);
    const seen = await spread(state.proxy.listen, token, 300);
    expect(Object.keys(seen).sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);
    for (const n of Object.values(seen)) expect(n).toBeGreaterThanOrEqual(90);
  });

  it('answers 401 to a wrong or missing token', { timeout: 240_000 }, async () => {
    const state = await fleetOf(3);
    expect((await get(`https://${state.proxy.listen}/`, 'not-the-token')).status).toBe(401);
    expect((await get(`https://${state.proxy.listen}/`)).status).toBe(401);
  });

  it('changes nothing when up runs again', { timeout: 240_000 }, async () => {
    const state = await fleetOf(3);
    const result = await uproxy(['up', '--backends', '3'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/build proxy \(unchanged\)/);
    expect(result.stderr).toMatch(/already up to date/);
    expect(readState(dir)).toEqual(state);
  });

  it('restarts only a backend that died', { timeout: 240_000 }, async () => {
    const state = await fleetOf(3);
    const victim = state.machines.find((m) => m.name === 'backend-2')!;
    process.kill(victim.pid!, 'SIGKILL');
    const result = await uproxy(['up', '--backends', '3'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    const after = readState(dir);
    const pid = (name: string, s: State): number | null | undefined => s.machines.find((m) => m.name === name)?.pid;
    expect(pid('backend-2', after)).not.toBe(victim.pid);
    for (const name of ['backend-1', 'backend-3', 'proxy']) expect(pid(name, after), name).toBe(pid(name, state));
    expect(Object.keys(await spread(after.proxy.listen, token, 30)).sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);
  });

  it('scales to 5 and back to 2 without failing a request or restarting the proxy', { timeout: 300_000 }, async () => {
    const state = await fleetOf(3);
    const proxyPid = state.machines.find((m) => m.role === 'proxy')!.pid;
    const configBefore = readFileSync(join(dir, 'uproxy.json'), 'utf8');
    await underLoad(state.proxy.listen, async (load) => {
      expect(await waitFor(() => load.ok() >= 50, 30_000)).toBe(true);
      const five = await uproxy(['up', '--backends', '5'], dir);
      expect(five.exitCode, five.stderr).toBe(0);
      const scaled = readState(dir);
      expect(scaled.machines.filter((m) => m.role === 'backend')).toHaveLength(5);
      for (const name of ['backend-1', 'backend-2', 'backend-3']) {
        expect(scaled.machines.find((m) => m.name === name)?.pid).toBe(state.machines.find((m) => m.name === name)?.pid);
      }
      expect(scaled.proxy.listen).toBe(state.proxy.listen);
      expect(Object.keys(await spread(scaled.proxy.listen, token, 50)).sort()).toEqual(['backend-1', 'backend-2', 'backend-3', 'backend-4', 'backend-5']);

      const two = await uproxy(['up', '--backends', '2'], dir);
      expect(two.exitCode, two.stderr).toBe(0);
      expect(two.stderr).toContain('Saved "backends": { "count": 2 } in uproxy.json');
      expect(readFileSync(join(dir, 'uproxy.json'), 'utf8')).toBe(configBefore.replace('"count": 3', '"count": 2'));
      const shrunk = readState(dir);
      expect(shrunk.machines.map((m) => m.name).sort()).toEqual(['backend-1', 'backend-2', 'proxy']);
      for (const m of scaled.machines.filter((m) => !shrunk.machines.some((s) => s.name === m.name))) {
        expect(existsSync(`/proc/${m.pid}`) && readFileSync(`/proc/${m.pid}/cmdline`, 'utf8').length > 0).toBe(false);
        expect(await portIsFree(m.address)).toBe(true);
      }
      expect(Object.keys(await spread(shrunk.proxy.listen, token, 20)).sort()).toEqual(['backend-1', 'backend-2']);
      // The load must still be running after both scalings, or it proved nothing about them.
      const okAfterScaling = load.ok();
      expect(await waitFor(() => load.ok() >= okAfterScaling + 50, 30_000)).toBe(true);
      for (const s of [scaled, shrunk]) expect(s.machines.find((m) => m.role === 'proxy')!.pid).toBe(proxyPid);
    });
  });

  it('a plain up keeps the size the last up --backends set', { timeout: 240_000 }, async () => {
    const state = await fleetOf(2);
    const result = await uproxy(['up'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/already up to date/);
    expect(result.stderr).not.toContain('Saved');
    expect(readState(dir)).toEqual(state);
  });

  it('restarts backends whose app changed one at a time, drained first, without failing a request', { timeout: 300_000 }, async () => {
    const state = await fleetOf(2);
    const proxyPid = state.machines.find((m) => m.role === 'proxy')!.pid;
    await underLoad(state.proxy.listen, async (load) => {
      expect(await waitFor(() => load.ok() >= 50, 30_000)).toBe(true);
      const source = join(dir, 'backend/src/server.c');
      writeFileSync(source, readFileSync(source, 'utf8').replace('<h1>Hello from %s</h1>', '<h1>Hello from %s, rebuilt</h1>'));
      const result = await uproxy(['up'], dir);
      expect(result.exitCode, result.stderr).toBe(0);
      for (const name of ['backend-1', 'backend-2']) expect(result.stderr).toContain(`restart ${name} (changed), drained first`);
      const after = readState(dir);
      for (const name of ['backend-1', 'backend-2']) {
        expect(after.machines.find((m) => m.name === name)?.pid, name).not.toBe(state.machines.find((m) => m.name === name)?.pid);
      }
      expect(after.machines.find((m) => m.role === 'proxy')!.pid).toBe(proxyPid);
      expect((await get(`https://${after.proxy.listen}/`, token)).body).toContain(', rebuilt</h1>');
      const okAfterRestart = load.ok();
      expect(await waitFor(() => load.ok() >= okAfterRestart + 50, 30_000)).toBe(true);
    });
  });

  it('up undrains a backend left draining (an interrupted restart, or a drain from status)', { timeout: 240_000 }, async () => {
    const state = await fleetOf(2);
    const endpoint = { url: `http://${state.proxy.admin}`, token: readFileSync(join(dir, '.uproxy/admin-token'), 'utf8').trim() };
    expect(await setBackendDrain(endpoint, 'backend-1', true)).toBe(true);
    expect((await fetchStats(endpoint)).backends.find((b) => b.name === 'backend-1')?.state).toBe('draining');
    const result = await uproxy(['up'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain('undrain backend-1');
    expect((await fetchStats(endpoint)).backends.map((b) => `${b.name}:${b.state}`)).toEqual(['backend-1:up', 'backend-2:up']);
    expect(readState(dir)).toEqual(state);
  });

  it('restarts a proxy that died with the whole current backend list', { timeout: 240_000 }, async () => {
    const state = await fleetOf(2);
    const proxy = state.machines.find((m) => m.role === 'proxy')!;
    process.kill(proxy.pid!, 'SIGKILL');
    const result = await uproxy(['up'], dir);
    expect(result.exitCode, result.stderr).toBe(0);
    const after = readState(dir);
    const restarted = after.machines.find((m) => m.role === 'proxy')!;
    expect(restarted.pid).not.toBe(proxy.pid);
    const argv = readFileSync(`/proc/${restarted.pid}/cmdline`, 'utf8').split('\0');
    expect(argv.filter((word, i) => argv[i - 1] === '--backend').map((b) => b.split('=')[0])).toEqual(['backend-1', 'backend-2']);
    expect(Object.keys(await spread(after.proxy.listen, token, 20)).sort()).toEqual(['backend-1', 'backend-2']);
  });

  it('ps and logs show the fleet', { timeout: 240_000 }, async () => {
    await fleetOf(2);
    const ps = await uproxy(['ps', '--json'], dir);
    const listing = JSON.parse(ps.stdout);
    expect(listing.machines.map((m: { name: string; state: string; health?: string }) => [m.name, m.state, m.health])).toEqual([
      ['backend-1', 'running', 'up'],
      ['backend-2', 'running', 'up'],
      ['proxy', 'running', 'serving'],
    ]);
    const logs = await uproxy(['logs', 'backend-2'], dir);
    expect(logs.stdout).toContain('backend backend-2 listening on');
  });

  it('replaces a backend whose process runs but stays down (stopped), instead of waiting on it', { timeout: 240_000 }, async () => {
    const state = await fleetOf(2);
    const victim = state.machines.find((m) => m.name === 'backend-2')!;
    // Alive to the runtime, dead to the proxy: what an app that died inside a VM still running looks like.
    process.kill(victim.pid!, 'SIGSTOP');
    try {
      const endpoint = { url: `http://${state.proxy.admin}`, token: readFileSync(join(dir, '.uproxy/admin-token'), 'utf8').trim() };
      const deadline = Date.now() + 30_000;
      while ((await fetchStats(endpoint)).backends.find((b) => b.name === 'backend-2')?.state !== 'down' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
      }
      const result = await uproxy(['up'], dir);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stderr).toContain('stop backend-2 (changed, exited or not serving)');
      const after = readState(dir);
      const pid = (name: string, s: State): number | null | undefined => s.machines.find((m) => m.name === name)?.pid;
      expect(pid('backend-2', after)).not.toBe(victim.pid);
      for (const name of ['backend-1', 'proxy']) expect(pid(name, after), name).toBe(pid(name, state));
      expect(Object.keys(await spread(after.proxy.listen, token, 20)).sort()).toEqual(['backend-1', 'backend-2']);
    } finally {
      try {
        process.kill(victim.pid!, 'SIGCONT');
      } catch {
        // Gone: the up above replaced it.
      }
    }
  });

  it('a replacement proxy that does not become healthy keeps serving; ps and status fail plainly once no proxy runs', { timeout: 300_000 }, async () => {
    const state = await fleetOf(2);
    const oldProxy = state.machines.find((m) => m.role === 'proxy')!;
    const configPath = join(dir, 'uproxy.json');
    const configBefore = readFileSync(configPath, 'utf8');
    // A new health path changes the proxy's command line (a restart) and fails every check.
    const config = JSON.parse(configBefore);
    config.backends.health = { path: '/no-such-page' };
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    try {
      const failed = await uproxy(['up', '--timeout', '6'], dir);
      expect(failed.exitCode).toBe(1);
      expect(failed.stderr).toMatch(/the fleet did not become healthy within 6 s/);
      expect(failed.stderr).toContain('the new proxy keeps running');
      const kept = readState(dir).machines.find((m) => m.role === 'proxy')!;
      expect(kept.pid).not.toBe(oldProxy.pid);
      const ps = await uproxy(['ps'], dir);
      expect(ps.exitCode, ps.stdout).toBe(0);
      expect(ps.stdout).toMatch(/^proxy\s+proxy\s+\S+\s+\d+\s+-\s+running, serving$/m);
      // It serves: the clients get an answer from it (no backend is up under this health path).
      expect((await get(`https://${readState(dir).proxy.listen}/`, token)).status).toBe(503);

      process.kill(kept.pid!, 'SIGKILL');
      expect(await waitFor(() => !existsSync(`/proc/${kept.pid}/cmdline`) || readFileSync(`/proc/${kept.pid}/cmdline`, 'utf8') === '', 10_000)).toBe(true);
      const none = await uproxy(['ps'], dir);
      expect(none.exitCode).toBe(1);
      expect(none.stdout).toContain('No proxy: the proxy of fleet fleet is not running (exited)');
      const json = await uproxy(['ps', '--json'], dir);
      expect(json.exitCode).toBe(1);
      expect(JSON.parse(json.stdout).proxyMissing).toMatch(/not running/);
      const status = await uproxy(['status', '--once', '--interval', '0.2'], dir);
      expect(status.exitCode).toBe(1);
      expect(status.stderr).toContain('the proxy of fleet fleet is not running (exited)');
    } finally {
      writeFileSync(configPath, configBefore);
    }
    const healthy = await fleetOf(2);
    expect(Object.keys(await spread(healthy.proxy.listen, token, 20)).sort()).toEqual(['backend-1', 'backend-2']);
  });

  it('down stops everything, frees the ports and is idempotent', { timeout: 240_000 }, async () => {
    const state = await fleetOf(2);
    const down = await uproxy(['down'], dir);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(down.stdout).toContain('Stopped 3 machines');
    expect(existsSync(join(dir, '.uproxy/state.json'))).toBe(false);
    expect(processesOf(dir)).toEqual([]);
    for (const address of [state.proxy.listen, state.proxy.admin, ...state.machines.map((m) => m.address)]) {
      expect(await portIsFree(address), address).toBe(true);
    }
    const again = await uproxy(['down'], dir);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toMatch(/Nothing to stop/);
  });
});

describe('failures on the host runtime', () => {
  it('cleans up after an up that was SIGKILLed while starting machines', { timeout: 240_000 }, async () => {
    const dir = await newProject('killed');
    expect((await uproxy(['up', '--dry-run'], dir)).exitCode).toBe(0);
    // Build first, so the kill below lands while machines are being started.
    const built = await uproxy(['up', '--backends', '1'], dir);
    expect(built.exitCode, built.stderr).toBe(0);
    await uproxy(['down'], dir);

    const up = spawn('node', [BIN, 'up', '--backends', '3'], { cwd: dir, stdio: 'ignore' });
    const statePath = join(dir, '.uproxy/state.json');
    const started = await waitFor(() => existsSync(statePath) && readFileSync(statePath, 'utf8').includes('"backend-2"'), 60_000);
    up.kill('SIGKILL');
    await new Promise((resolve) => up.once('exit', resolve));
    expect(started).toBe(true);
    expect(processesOf(dir).length).toBeGreaterThan(0);

    const down = await uproxy(['down'], dir);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(processesOf(dir)).toEqual([]);
    expect(existsSync(statePath)).toBe(false);
  });

  it('stops what it started and shows the proxy log when the fleet never becomes healthy', { timeout: 240_000 }, async () => {
    const dir = await newProject('unhealthy', (config) => {
      config.backends.health = { path: '/no-such-page' };
    });
    const result = await uproxy(['up', '--backends', '2', '--timeout', '6'], dir);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/uproxy: the fleet did not become healthy within 6 s: not up yet: backend-1 \(down\), backend-2 \(down\)/);
    expect(result.stderr).toContain('.uproxy/logs/proxy.log:');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(processesOf(dir)).toEqual([]);
    expect(existsSync(join(dir, '.uproxy/state.json'))).toBe(false);
  });

  it('shows the compiler output when the backend does not build', { timeout: 240_000 }, async () => {
    const dir = await newProject('broken');
    writeFileSync(join(dir, 'backend/src/server.c'), 'int main(void) { return missing_symbol; }\n');
    const result = await uproxy(['up'], dir);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/uproxy: building backend failed \(make -C .*\/backend: exit 2\)/);
    expect(result.stderr).toContain('missing_symbol');
    // The compiler's error line once: in the error's log tail, not also under the failed step.
    expect(result.stderr.split('\n').filter((line) => /error: .missing_symbol. undeclared/.test(line))).toHaveLength(1);
    expect(existsSync(join(dir, '.uproxy/state.json'))).toBe(false);
  });
});
