import { describe, expect, it } from 'vitest';
import { advance, appendHistory, computeRates, HISTORY_WINDOW_MS, type StatsSeries } from '../../cli/stats/rates.js';
import { backend, stats } from '../tui/stats-fixture.js';

const at = (atMs: number, s = stats()) => ({ atMs, stats: s });

describe('computeRates', () => {
  it('turns counter deltas over the interval into per-second rates', () => {
    const prev = at(1000, stats({ uptimeMs: 5000, accepted: 100, missing: 2, invalid: 3, byToken: { default: 80, ci: 20 } }));
    const curr = at(3000, stats({ uptimeMs: 7000, accepted: 300, missing: 6, invalid: 3, byToken: { default: 240, ci: 60 } }));
    const r = computeRates(prev, curr)!;
    expect(r.intervalMs).toBe(2000);
    expect(r.restarted).toBe(false);
    expect(r.auth.acceptedPerSec).toBe(100);
    expect(r.auth.missingPerSec).toBe(2);
    expect(r.auth.invalidPerSec).toBe(0);
    expect(r.auth.deniedPerSec).toBe(2);
    expect(r.auth.byToken).toEqual({ default: 80, ci: 20 });
    expect(r.requestsPerSec).toBe(102);
  });

  it('gives each backend its request rate and share of the traffic', () => {
    const prev = at(0, stats({ backends: [backend('a', 1, { requests: 10 }), backend('b', 2, { requests: 10, errors: 1 })] }));
    const curr = at(1000, stats({ backends: [backend('a', 1, { requests: 40 }), backend('b', 2, { requests: 20, errors: 3 })] }));
    const r = computeRates(prev, curr)!;
    expect(r.backends.a).toEqual({ requestsPerSec: 30, errorsPerSec: 0, share: 0.75 });
    expect(r.backends.b).toEqual({ requestsPerSec: 10, errorsPerSec: 2, share: 0.25 });
  });

  it('gives every backend a zero share, not NaN, when there was no traffic', () => {
    const s = stats({ backends: [backend('a', 1, { requests: 5 })] });
    expect(computeRates(at(0, s), at(1000, s))!.backends.a).toEqual({ requestsPerSec: 0, errorsPerSec: 0, share: 0 });
  });

  it('returns null for a zero or negative interval instead of an infinite rate', () => {
    const prev = at(1000, stats({ accepted: 1 }));
    expect(computeRates(prev, at(1000, stats({ accepted: 50 })))).toBeNull();
    expect(computeRates(prev, at(900, stats({ accepted: 50 })))).toBeNull();
  });

  it('after a proxy restart counts from zero: no negative or absurd rates', () => {
    const prev = at(0, stats({ uptimeMs: 3_600_000, accepted: 1_000_000, missing: 50, byToken: { default: 1_000_000 },
      backends: [backend('a', 1, { requests: 600_000, errors: 9 }), backend('b', 2, { requests: 400_000 })] }));
    const curr = at(1000, stats({ uptimeMs: 400, pid: 777, accepted: 30, missing: 1, byToken: { default: 30 },
      backends: [backend('a', 1, { requests: 20 }), backend('b', 2, { requests: 10 })] }));
    const r = computeRates(prev, curr)!;
    expect(r.restarted).toBe(true);
    expect(r.auth.acceptedPerSec).toBe(30);
    expect(r.auth.missingPerSec).toBe(1);
    expect(r.auth.byToken.default).toBe(30);
    expect(r.backends.a).toEqual({ requestsPerSec: 20, errorsPerSec: 0, share: 20 / 30 });
    expect(r.backends.b!.requestsPerSec).toBe(10);
  });

  it('treats a restart that kept the pid (a unikernel is always pid 1) as a restart', () => {
    const prev = at(0, stats({ pid: 1, uptimeMs: 90_000, accepted: 500, backends: [backend('a', 1, { requests: 500 })] }));
    const curr = at(1000, stats({ pid: 1, uptimeMs: 600, accepted: 600, backends: [backend('a', 1, { requests: 600 })] }));
    const r = computeRates(prev, curr)!;
    expect(r.restarted).toBe(true);
    expect(r.auth.acceptedPerSec).toBe(600);
    expect(r.backends.a!.requestsPerSec).toBe(600);
  });

  it('never reports a negative rate for a single counter that went back', () => {
    const prev = at(0, stats({ backends: [backend('a', 1, { requests: 100, errors: 50 })] }));
    const curr = at(1000, stats({ backends: [backend('a', 1, { requests: 110, errors: 2 })] }));
    const r = computeRates(prev, curr)!;
    expect(r.backends.a!.errorsPerSec).toBe(2);
  });

  it('shows no rate for a backend that just appeared and drops one that went away', () => {
    const prev = at(0, stats({ backends: [backend('a', 1, { requests: 10 }), backend('gone', 3, { requests: 99 })] }));
    const curr = at(1000, stats({ backends: [backend('a', 1, { requests: 20 }), backend('new', 2, { requests: 5000 })] }));
    const r = computeRates(prev, curr)!;
    expect(Object.keys(r.backends).sort()).toEqual(['a', 'new']);
    expect(r.backends.new).toEqual({ requestsPerSec: null, errorsPerSec: null, share: null });
    expect(r.backends.a).toEqual({ requestsPerSec: 10, errorsPerSec: 0, share: 1 });
  });

  it('counts a token the proxy lists for the first time from zero', () => {
    const prev = at(0, stats({ accepted: 10, byToken: { default: 10 } }));
    const curr = at(2000, stats({ accepted: 14, byToken: { default: 10, ci: 4 } }));
    expect(computeRates(prev, curr)!.auth.byToken).toEqual({ default: 0, ci: 2 });
  });
});

describe('advance and the 60 s history', () => {
  it('has no rates after one sample and rates after the second', () => {
    let s: StatsSeries = advance(undefined, at(0, stats({ accepted: 0 })));
    expect(s.rates).toBeNull();
    expect(s.history).toEqual([]);
    s = advance(s, at(1000, stats({ accepted: 7, missing: 1 })));
    expect(s.rates!.auth.acceptedPerSec).toBe(7);
    expect(s.history).toEqual([{ atMs: 1000, acceptedPerSec: 7, deniedPerSec: 1 }]);
  });

  it('ignores a sample that is not newer than the latest', () => {
    const s = advance(advance(undefined, at(0)), at(1000, stats({ accepted: 5 })));
    expect(advance(s, at(1000, stats({ accepted: 9 })))).toBe(s);
  });

  it('keeps only the last 60 seconds of points', () => {
    let s: StatsSeries | undefined;
    for (let i = 0; i <= 90; i++) s = advance(s, at(i * 1000, stats({ accepted: i * 3 })));
    expect(s!.history.length).toBe(HISTORY_WINDOW_MS / 1000);
    expect(s!.history[0]!.atMs).toBe(31_000);
    expect(s!.history.every((p) => p.acceptedPerSec === 3)).toBe(true);
  });

  it('appendHistory leaves its input untouched', () => {
    const h = [{ atMs: 0, acceptedPerSec: 1, deniedPerSec: 0 }];
    const next = appendHistory(h, { atMs: 70_000, acceptedPerSec: 2, deniedPerSec: 0 });
    expect(h).toHaveLength(1);
    expect(next).toEqual([{ atMs: 70_000, acceptedPerSec: 2, deniedPerSec: 0 }]);
  });
});
