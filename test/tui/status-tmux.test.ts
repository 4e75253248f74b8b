import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BIN, uproxy } from '../cli/run.js';

/**
 * `uproxy status` in a real terminal: a host-runtime fleet, the TUI running inside tmux (a
 * private server, so no other tmux session is touched), traffic sent to 127.0.0.1, and the
 * screen read back with capture-pane.
 */

const SOCKET = `uproxy-status-test-${process.pid}`;
const PANE = 'status';
let root: string;
let project: string;
let proxyAddress: string;
let clientToken: string;
let trusting: Agent;

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
}
const screen = () => tmux('capture-pane', '-p', '-t', PANE);
const untilScreen = (check: (text: string) => void, timeout = 30_000) =>
  vi.waitFor(() => check(screen()), { timeout, interval: 200 });
const acceptedTotal = (text: string) => Number(text.match(/accepted\s+\S+\/s\s+total ([\d,]+)/)?.[1]?.replaceAll(',', '') ?? NaN);

/**
 * `count` requests to the proxy, four at a time; `token` null sends none (to be denied).
 * Stops early once `until` settles.
 */
async function traffic(count: number, token: string | null, until?: Promise<unknown>): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  let stop = false;
  void until?.finally(() => (stop = true));
  const worker = async () => {
    while (next < count && !stop) {
      next++;
      const response = await request(`https://${proxyAddress}/`, {
        dispatcher: trusting,
        headers: token === null ? {} : { 'x-auth-token': token },
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      await response.body.dump();
      statuses.push(response.statusCode);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return statuses;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-status-'));
  project = join(root, 'fleet');
  const init = await uproxy(['init', 'fleet', '--backends', '3'], root);
  expect(init.exitCode, init.stderr).toBe(0);
  // Free ports, so the test never collides with another fleet on this machine.
  const configFile = join(project, 'uproxy.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8'));
  config.proxy.port = 0;
  config.proxy.adminPort = 0;
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const up = await uproxy(['up', '--backends', '3'], project, 300_000);
  expect(up.exitCode, up.stderr).toBe(0);
  proxyAddress = JSON.parse(readFileSync(join(project, '.uproxy/state.json'), 'utf8')).proxy.listen;
  clientToken = readFileSync(join(project, '.uproxy/client-token'), 'utf8').trim();
  // HTTPS, as init sets up: clients trust the project CA.
  trusting = new Agent({ connect: { ca: readFileSync(join(project, '.uproxy/tls/ca.pem')) } });
}, 360_000);

afterAll(async () => {
  try {
    tmux('kill-server');
  } catch {
    // Already gone: the test ended its session itself.
  }
  if (project) {
    const down = await uproxy(['down'], project, 60_000);
    expect(down.exitCode, down.stderr).toBe(0);
  }
  rmSync(root, { recursive: true, force: true });
}, 120_000);

describe('uproxy status in tmux', () => {
  it('shows the backends and rising counters, and q exits and restores the terminal', async () => {
    tmux('new-session', '-d', '-s', PANE, '-x', '100', '-y', '30', '-c', project, 'bash --norc --noprofile');
    // The pane plays a person's terminal: CI runs this suite with CI=true, and Ink draws nothing
    // live while CI or CONTINUOUS_INTEGRATION is set, so the pane's shell drops both.
    tmux('send-keys', '-t', PANE, `PS1='$ '; unset CI CONTINUOUS_INTEGRATION; clear; ${process.execPath} ${BIN} status --interval 0.5; echo "status exited $?"`, 'Enter');

    await untilScreen((text) => {
      expect(text).toContain('● live');
      for (const name of ['backend-1', 'backend-2', 'backend-3']) expect(text).toMatch(new RegExp(`${name}\\s+127\\.0\\.0\\.1:\\d+\\s+up\\s`));
    });
    expect(tmux('display', '-p', '-t', PANE, '#{alternate_on}').trim()).toBe('1');
    const before = acceptedTotal(screen());

    // While traffic flows, every backend gets a share and the accepted total climbs.
    const sending = traffic(600, clientToken);
    const screens: string[] = [];
    await untilScreen((text) => {
      screens.push(text);
      expect(acceptedTotal(text)).toBeGreaterThan(before);
    });
    const statuses = await sending;
    expect(statuses.every((s) => s === 200)).toBe(true);
    const denied = await traffic(20, null);
    expect(denied.every((s) => s === 401)).toBe(true);
    await untilScreen((text) => {
      screens.push(text);
      expect(acceptedTotal(text)).toBe(before + 600);
      expect(text).toMatch(/missing\s+\S+\/s\s+total 20\b/);
    });
    const busy = screens.find((text) => /backend-1\s+\S+\s+up\s+[1-9]\d*\s+\d+%/.test(text));
    expect(busy, `no screen showed backend-1 busy:\n${screens.at(-1)}`).toBeDefined();
    expect(busy).toMatch(/backend-2\s+\S+\s+up\s+[1-9]\d*\s+[1-9]\d%/);

    // `d` drains the selected backend through the proxy's admin API, and undrains it again.
    tmux('send-keys', '-t', PANE, 'd');
    await untilScreen((text) => {
      expect(text).toContain('backend-1 is draining');
      expect(text).toMatch(/backend-1\s+\S+\s+draining\s/);
    });
    tmux('send-keys', '-t', PANE, 'd');
    await untilScreen((text) => {
      expect(text).toContain('backend-1 takes requests again');
      expect(text).toMatch(/backend-1\s+\S+\s+up\s/);
    });

    tmux('send-keys', '-t', PANE, 'q');
    await untilScreen((text) => expect(text).toContain('status exited 0'));
    const after = screen();
    expect(after).not.toContain('Backends (');
    expect(tmux('display', '-p', '-t', PANE, '#{alternate_on} #{cursor_flag}').trim()).toBe('0 1');
    tmux('send-keys', '-t', PANE, "stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo '<- tty modes'", 'Enter');
    await untilScreen((text) => expect(text).toMatch(/^icanon echo <- tty modes$/m));
  }, 120_000);
});

describe('uproxy status in scripts', () => {
  it('prints one plain snapshot when stdout is not a terminal, with rates from two samples', async () => {
    const running = uproxy(['status', '--interval', '0.5'], project);
    await traffic(5000, clientToken, running);
    const result = await running;
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).not.toContain('\u001b[');
    expect(result.stdout).toMatch(/^uproxy fleet \(host\)  proxy https:\/\/127\.0\.0\.1:\d+  up \S+  round-robin  every 500ms$/m);
    expect(Number(result.stdout.match(/accepted\s+([\d.]+)\/s/)?.[1])).toBeGreaterThan(0);
    for (const name of ['backend-1', 'backend-2', 'backend-3']) expect(result.stdout).toMatch(new RegExp(`${name}\\s+127\\.0\\.0\\.1:\\d+\\s+up\\s`));
    expect(result.stdout).not.toContain('q quit');
  }, 60_000);

  it('--json prints the stats and the rates between two samples', async () => {
    const running = uproxy(['status', '--json', '--interval', '0.5'], project);
    await traffic(5000, clientToken, running);
    const result = await running;
    expect(result.exitCode, result.stderr).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(json.fleet).toMatchObject({ name: 'fleet', runtime: 'host', proxyAddress: proxyAddress });
    expect(json.stats.backends.map((b: { name: string }) => b.name).sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);
    expect(json.rates.intervalMs).toBeGreaterThanOrEqual(450);
    expect(Object.keys(json.rates.backends).sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);
    // Round-robin over three healthy backends: each gets about a third of the traffic.
    for (const rates of Object.values(json.rates.backends) as { requestsPerSec: number; share: number }[]) {
      expect(rates.requestsPerSec).toBeGreaterThan(0);
      expect(rates.share).toBeGreaterThan(0.2);
      expect(rates.share).toBeLessThan(0.45);
    }
  }, 60_000);

  it('says plainly when there is no fleet to watch', async () => {
    const idle = await uproxy(['init', 'idle', '--backends', '1'], root);
    expect(idle.exitCode, idle.stderr).toBe(0);
    const result = await uproxy(['status', '--once'], join(root, 'idle'));
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^uproxy: no fleet is running in .*; start one with `uproxy up`$/m);
  });
});
