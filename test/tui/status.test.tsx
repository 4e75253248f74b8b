import { describe, expect, it, vi } from 'vitest';
import { advance, type StatsSeries } from '../../cli/stats/rates.js';
import type { PollState } from '../../cli/tui/poller.js';
import { backend, stats } from './stats-fixture.js';

// Colours are part of what is tested; chalk reads this when Ink first loads it.
process.env.FORCE_COLOR = '1';
const { render } = await import('ink-testing-library');
const { Status, StatusScreen } = await import('../../cli/tui/Status.js');

const fleet = { name: 'demo', runtime: 'host', proxyAddress: '127.0.0.1:8080' };
const ESC = '\u001b';
const plain = (s: string | undefined) => (s ?? '').replace(/\u001b\[[0-9;]*m/g, '');
const lineOf = (frame: string | undefined, text: string) => (frame ?? '').split('\n').find((l) => plain(l).includes(text)) ?? '';

/** A fleet of three: a takes twice b's traffic, c is down; requests grow every second. */
function sequence(seconds: number, restartAt?: number): StatsSeries {
  let series: StatsSeries | undefined;
  for (let i = 0; i <= seconds; i++) {
    // After the restart the proxy has run one second when sampled.
    const t = restartAt !== undefined && i >= restartAt ? i - restartAt + 1 : i;
    const s = stats({
      uptimeMs: 1000 + t * 1000,
      pid: restartAt !== undefined && i >= restartAt ? 99 : 42,
      accepted: t * 300,
      missing: t * 2,
      invalid: t * 4,
      byToken: { default: t * 200, ci: t * 100 },
      backends: [
        backend('backend-1', 9001, { requests: t * 200, in_flight: 3, latency_ms: { p50: 0.5, p90: 1, p99: 4.2 } }),
        backend('backend-2', 9002, { requests: t * 100, state: 'draining' }),
        backend('backend-3', 9003, { state: 'down', errors: 7 }),
      ],
    });
    series = advance(series, { atMs: i * 1000, stats: s });
  }
  return series!;
}

function screen(state: PollState, width = 80, height = 24) {
  return render(
    <StatusScreen
      fleet={fleet}
      intervalMs={1000}
      state={state}
      nowEpochMs={Date.parse('2025-01-01T12:00:40Z')}
      width={width}
      height={height}
      sort="name"
      selected="backend-1"
      footer={{ message: undefined, drainAvailable: true, help: false }}
    />,
  );
}

describe('StatusScreen', () => {
  it('shows rates, totals, per-token rates and each backend share of the traffic', () => {
    const { lastFrame } = screen({ series: sequence(10) });
    const frame = plain(lastFrame());
    expect(frame).toContain('uproxy demo (host)  proxy 127.0.0.1:8080  up 11s  round-robin');
    expect(lineOf(frame, 'accepted')).toMatch(/accepted\s+300\/s\s+total 3,000/);
    expect(lineOf(frame, 'denied')).toMatch(/denied\s+6\.0\/s\s+total 60/);
    expect(lineOf(frame, 'missing')).toMatch(/missing\s+2\.0\/s\s+total 20/);
    expect(lineOf(frame, 'invalid')).toMatch(/invalid\s+4\.0\/s\s+total 40/);
    expect(lineOf(frame, 'tokens')).toMatch(/default 200\/s\s+ci 100\/s/);
    expect(lineOf(frame, 'backend-1')).toMatch(/127\.0\.0\.1:9001\s+up\s+200\s+67% █+░+\s+3\s+0\.5\/4\.2\s+0$/);
    expect(lineOf(frame, 'backend-2')).toMatch(/draining\s+100\s+33% █+░+/);
    expect(lineOf(frame, 'backend-3')).toMatch(/down\s+0\s+0% ░+\s+0\s+0\.4\/2\.1\s+7$/);
    // The bar is proportional: the busier backend has twice the filled cells.
    const filled = (name: string) => (lineOf(frame, name).match(/█/g) ?? []).length;
    expect(filled('backend-1')).toBeGreaterThan(filled('backend-2'));
  });

  it('shows how often a supervisor restarted each machine, where one keeps count', () => {
    const { lastFrame } = screen({ series: sequence(10), restarts: { proxy: 1, 'backend-1': 0, 'backend-2': 3, 'backend-3': 0 } }, 100);
    const frame = plain(lastFrame());
    expect(lineOf(frame, 'NAME')).toMatch(/ERRORS\s+RST$/);
    expect(lineOf(frame, 'backend-2')).toMatch(/\s3$/);
    expect(lineOf(frame, 'backend-1')).toMatch(/\s0\s+0$/);
    expect(frame).toContain('restarted 1×');
    // Without a supervisor (restart: no, kraft) there is no column.
    expect(lineOf(plain(screen({ series: sequence(10) }, 100).lastFrame()), 'NAME')).not.toContain('RST');
  });

  it('shows an HTTPS proxy by its https:// address and the days left on its certificate', () => {
    const now = Date.parse('2025-01-01T12:00:40Z');
    const tls = (days: number) => ({ enabled: true, handshakes: 5, resumed: 1, failed: 0, in_progress: 0, certificates: [{ index: 0, names: ['localhost'], not_after: Math.floor(now / 1000) + days * 86_400 + 60 }] });
    const frameWith = (days: number) => {
      const series = advance(undefined, { atMs: 0, stats: { ...stats({ uptimeMs: 1000, backends: [backend('backend-1', 9001)] }), tls: tls(days) } });
      const { lastFrame } = render(
        <StatusScreen fleet={{ ...fleet, tls: 'local-ca' }} intervalMs={1000} state={{ series }} nowEpochMs={now} width={120} height={24} sort="name" selected="backend-1"
          footer={{ message: undefined, drainAvailable: true, help: false }} />,
      );
      return lastFrame() ?? '';
    };
    expect(plain(frameWith(29))).toContain('proxy https://127.0.0.1:8080');
    expect(lineOf(frameWith(29), 'cert')).toMatch(/cert 29d left$/);
    // A third of a 30-day life or less: `up` would renew it, so it stands out.
    expect(lineOf(frameWith(9), 'cert')).toContain(`${ESC}[33m  cert 9d left`);
    expect(plain(screen({ series: sequence(2) }).lastFrame())).not.toContain('cert ');
  });

  it('colours each state: up green, draining yellow, down red', () => {
    const frame = screen({ series: sequence(3) }).lastFrame() ?? '';
    // The colour code (32 green, 33 yellow, 31 red) directly precedes the state, maybe with bold.
    const colourBefore = (line: string, word: string) => line.match(new RegExp(String.raw`\u001b\[(3\d)m(?:\u001b\[1m)?` + `${word} `))?.[1];
    expect(colourBefore(lineOf(frame, 'backend-1'), 'up')).toBe('32');
    expect(colourBefore(lineOf(frame, 'backend-2'), 'draining')).toBe('33');
    expect(colourBefore(lineOf(frame, 'backend-3'), 'down')).toBe('31');
  });

  it('draws the 60 s sparklines from the rate history', () => {
    const frame = plain(screen({ series: sequence(30) }).lastFrame());
    expect(lineOf(frame, 'accepted')).toMatch(/[▁▂▃▄▅▆▇█]{10,} max 300/);
  });

  it('fits 80x24: no line wider than the terminal and never as tall as it', () => {
    const many = sequence(5);
    const backends = Array.from({ length: 30 }, (_, i) => backend(`backend-${i + 1}`, 9001 + i));
    const state = { series: { ...many, latest: { ...many.latest, stats: { ...many.latest.stats, backends } } } };
    const frame = plain(screen(state).lastFrame());
    const lines = frame.split('\n');
    expect(lines.length).toBeLessThan(24);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
    expect(frame).toContain('1-11 of 30');
  });

  it('uses a wider terminal for longer bars and separate p50/p99 columns', () => {
    const narrow = plain(screen({ series: sequence(3) }).lastFrame());
    const wide = plain(screen({ series: sequence(3) }, 160, 40).lastFrame());
    const cells = (frame: string) => (lineOf(frame, 'backend-1').match(/[█░]/g) ?? []).length;
    expect(cells(wide)).toBeGreaterThan(cells(narrow) * 2);
    expect(wide).toMatch(/P50 ms\s+P99 ms/);
  });

  it('says when the proxy is unreachable, since when and the last error, keeping the last numbers', () => {
    const since = Date.parse('2025-01-01T12:00:05Z');
    const frame = plain(
      screen({
        series: sequence(3),
        unreachable: { sinceEpochMs: since, lastError: 'connect ECONNREFUSED 127.0.0.1:8081', failures: 3, retryInMs: 8000 },
      }).lastFrame(),
    );
    const clock = new Date(since).toTimeString().slice(0, 8);
    expect(frame).toContain(`✗ proxy unreachable since ${clock} (35s), retrying every 8s`);
    expect(frame).toContain('last error: connect ECONNREFUSED 127.0.0.1:8081');
    expect(frame).toContain('backend-1');
  });

  it('after a proxy restart shows small positive rates, not negative or huge ones', () => {
    const frame = plain(screen({ series: sequence(10, 10) }).lastFrame());
    expect(frame).toContain('proxy restarted: counters reset');
    expect(lineOf(frame, 'accepted')).toMatch(/accepted\s+300\/s\s+total 300\s/);
    expect(lineOf(frame, 'backend-1')).toMatch(/up\s+200\s+67%/);
    expect(frame).not.toMatch(/(^|\s)-\d/m);
  });

  it('shows dashes, not 0.0, as the latency of a backend that has served nothing', () => {
    const sample = (served: number) => stats({ backends: [backend('backend-1', 9001, { requests: served }), backend('backend-2', 9002)] });
    const series = advance(advance(undefined, { atMs: 0, stats: sample(10) }), { atMs: 1000, stats: sample(20) });
    const frame = plain(screen({ series }, 160, 40).lastFrame());
    expect(lineOf(frame, 'backend-1')).toMatch(/0\.4\s+2\.1/);
    expect(lineOf(frame, 'backend-2')).toMatch(/—\s+—/);
    expect(lineOf(frame, 'backend-2')).not.toMatch(/0\.4|2\.1/);
  });

  it('shows dashes, not zeros, before the second sample', () => {
    const first = advance(undefined, { atMs: 0, stats: stats({ accepted: 5, backends: [backend('backend-1', 9001)] }) });
    const frame = plain(screen({ series: first }).lastFrame());
    expect(frame).toContain('measuring…');
    expect(lineOf(frame, 'accepted')).toMatch(/accepted\s+—\/s\s+total 5/);
    expect(lineOf(frame, 'backend-1')).toMatch(/up\s+—\s+—/);
  });
});

describe('Status keys', () => {
  const wait = (check: () => void) => vi.waitFor(check, { timeout: 5000, interval: 20 });
  const selectedName = (frame: string | undefined) => plain(frame).match(/› (\S+)/)?.[1];

  it('moves the selection with the arrows and cycles the sort with s', async () => {
    const { lastFrame, stdin } = render(<Status fleet={fleet} intervalMs={1000} state={{ series: sequence(5) }} onDrain={async () => ({ kind: 'done' })} />);
    expect(selectedName(lastFrame())).toBe('backend-1');
    await wait(() => expect(plain(lastFrame())).toContain('sort: name'));
    stdin.write(`${ESC}[B`);
    await wait(() => expect(selectedName(lastFrame())).toBe('backend-2'));
    stdin.write(`${ESC}[B`);
    stdin.write(`${ESC}[B`);
    await wait(() => expect(selectedName(lastFrame())).toBe('backend-3'));
    stdin.write(`${ESC}[A`);
    await wait(() => expect(selectedName(lastFrame())).toBe('backend-2'));
    stdin.write('s');
    await wait(() => expect(plain(lastFrame())).toContain('sort: req/s'));
    stdin.write('s');
    stdin.write('s');
    await wait(() => expect(plain(lastFrame())).toContain('sort: errors'));
    // Sorted by errors, the failing backend comes first; the selection follows the backend.
    const rows = plain(lastFrame()).split('\n').filter((l) => /backend-\d/.test(l));
    expect(rows[0]).toContain('backend-3');
    expect(selectedName(lastFrame())).toBe('backend-2');
  });

  it('drains the selected backend, and undrains a draining one', async () => {
    const calls: [string, boolean][] = [];
    const { lastFrame, stdin } = render(
      <Status fleet={fleet} intervalMs={1000} state={{ series: sequence(5) }} onDrain={async (name, drain) => (calls.push([name, drain]), { kind: 'done' })} />,
    );
    await wait(() => expect(selectedName(lastFrame())).toBe('backend-1'));
    stdin.write('d');
    await wait(() => expect(plain(lastFrame())).toContain('backend-1 is draining: no new requests'));
    stdin.write(`${ESC}[B`);
    await wait(() => expect(selectedName(lastFrame())).toBe('backend-2'));
    stdin.write('d');
    await wait(() => expect(plain(lastFrame())).toContain('backend-2 takes requests again'));
    expect(calls).toEqual([['backend-1', true], ['backend-2', false]]);
  });

  it('says drain is not available when the proxy has no drain route', async () => {
    let calls = 0;
    const { lastFrame, stdin } = render(
      <Status fleet={fleet} intervalMs={1000} state={{ series: sequence(5) }} onDrain={async () => (calls++, { kind: 'unavailable' })} />,
    );
    expect(plain(lastFrame())).toContain('d drain/undrain');
    stdin.write('d');
    await wait(() => expect(plain(lastFrame())).toContain('d drain not available in this proxy'));
    stdin.write('d');
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toBe(1);
  });

  it('shows a failed drain with the reason', async () => {
    const { lastFrame, stdin } = render(
      <Status fleet={fleet} intervalMs={1000} state={{ series: sequence(5) }} onDrain={async () => ({ kind: 'failed', message: 'answered 500' })} />,
    );
    stdin.write('d');
    await wait(() => expect(plain(lastFrame())).toContain('drain backend-1 failed: answered 500'));
  });

  it('opens and closes the help with ?', async () => {
    const { lastFrame, stdin } = render(<Status fleet={fleet} intervalMs={1000} state={{ series: sequence(5) }} onDrain={async () => ({ kind: 'done' })} />);
    stdin.write('?');
    await wait(() => expect(plain(lastFrame())).toContain('press any key to go back'));
    expect(plain(lastFrame())).not.toContain('backend-1');
    stdin.write('x');
    await wait(() => expect(plain(lastFrame())).toContain('backend-1'));
  });
});
