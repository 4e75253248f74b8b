import { describe, expect, it } from 'vitest';
import { Backoff } from '../../cli/kubernetes/sync/backoff.js';
import { healthAnswer, SYNC_STALE_MS } from '../../cli/kubernetes/sync/health.js';
import { logfmtLine } from '../../cli/kubernetes/sync/log.js';

const NOW = Date.parse('2026-12-01T10:00:00.000Z');

describe('healthAnswer', () => {
  it('is 200 while watching with a recent successful sync', () => {
    expect(healthAnswer({ watching: true, lastSync: NOW - 1000, backends: 3 }, NOW)).toEqual({
      status: 200,
      body: { watching: true, lastSync: '2026-12-01T09:59:59.000Z', backends: 3 },
    });
  });

  it('is 503 with the reason otherwise: no watch, a failed sync, none yet, or none for too long', () => {
    const why = (h: Parameters<typeof healthAnswer>[0]): string | undefined => {
      const answer = healthAnswer(h, NOW);
      expect(answer.status).toBe(503);
      return answer.body.why;
    };
    expect(why({ watching: false, watchProblem: 'the Kubernetes API answered 503', lastSync: NOW, backends: 2 })).toBe('not watching EndpointSlices: the Kubernetes API answered 503');
    expect(why({ watching: true, lastSync: NOW - 5000, syncError: "cannot reach the proxy's admin API", backends: 2 })).toBe("the last sync with the proxy failed: cannot reach the proxy's admin API");
    expect(why({ watching: true, backends: 0 })).toBe('not synced with the proxy yet');
    expect(why({ watching: true, lastSync: NOW - SYNC_STALE_MS - 1000, backends: 2 })).toBe('no sync with the proxy for 31 s');
    expect(healthAnswer({ watching: false, backends: 0 }, NOW).body).toEqual({ watching: false, lastSync: null, backends: 0, why: 'not watching EndpointSlices: not started yet' });
  });
});

describe('logfmtLine', () => {
  it('writes the proxy\'s form, quoting values with spaces, quotes or equals signs, and leaving out unset ones', () => {
    expect(logfmtLine('info', 'backend_added', { backend: 'api-1', address: '10.0.0.1:8080', port_name: undefined, n: 3 }, new Date(NOW)))
      .toBe('ts=2026-12-01T10:00:00.000Z level=info event=backend_added backend=api-1 address=10.0.0.1:8080 n=3');
    expect(logfmtLine('warn', 'sync_failed', { error: 'said "no" a=b', empty: '' }, new Date(NOW)))
      .toBe('ts=2026-12-01T10:00:00.000Z level=warn event=sync_failed error="said \\"no\\" a=b" empty=""');
  });
});

describe('Backoff', () => {
  it('doubles from the first wait up to the longest, and starts afresh after a reset', () => {
    const backoff = new Backoff(250, 1000);
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([250, 500, 1000, 1000]);
    backoff.reset();
    expect(backoff.next()).toBe(250);
  });
});
