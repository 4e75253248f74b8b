import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../cli/kubernetes/sync/endpoints.js';
import { decide, routableEndpoints, type Leaving, type ProxyBackend, type ReconcileInput } from '../../cli/kubernetes/sync/reconcile.js';

/**
 * The sync controller's decision, pass by pass: the Service's endpoints and the proxy's
 * backends in, the admin API calls out. Each pass's `leaving` is fed to the next, as the
 * controller does.
 */

const ready = (name: string, ip = '10.0.0.1'): Endpoint => ({ name, address: `${ip}:8080`, ready: true, serving: true, terminating: false });
const notReady = (name: string, ip = '10.0.0.1'): Endpoint => ({ name, address: `${ip}:8080`, ready: false, serving: false, terminating: false });
const terminating = (name: string, ip = '10.0.0.1', serving = true): Endpoint => ({ name, address: `${ip}:8080`, ready: false, serving, terminating: true });
const backend = (e: Pick<Endpoint, 'name' | 'address'>, state: ProxyBackend['state'], inFlight = 0): ProxyBackend => ({ name: e.name, address: e.address, state, in_flight: inFlight });

const NOW = 1_000_000;
const pass = (input: Partial<ReconcileInput> & Pick<ReconcileInput, 'endpoints' | 'backends'>) =>
  decide({ leaving: new Map(), now: NOW, drainTimeoutMs: 30_000, ...input });

describe('decide', () => {
  it('adds every ready endpoint the proxy lacks, and nothing else', () => {
    const d = pass({ endpoints: [ready('a', '10.0.0.1'), ready('b', '10.0.0.2'), notReady('c', '10.0.0.3')], backends: [] });
    expect(d.actions).toEqual([
      { kind: 'add', name: 'a', address: '10.0.0.1:8080' },
      { kind: 'add', name: 'b', address: '10.0.0.2:8080' },
    ]);
    expect(d.pending).toEqual([]);
  });

  it('is in step when the proxy has exactly the ready endpoints, up', () => {
    const endpoints = [ready('a', '10.0.0.1'), ready('b', '10.0.0.2')];
    expect(pass({ endpoints, backends: endpoints.map((e) => backend(e, 'up')) })).toEqual({ actions: [], pending: [], leaving: new Map(), removed: [] });
  });

  it('waits for an added backend to pass its health check, saying so', () => {
    const a = ready('a');
    expect(pass({ endpoints: [a], backends: [backend(a, 'down')] }).pending).toEqual([
      "a is not up yet: the proxy's health checks of 10.0.0.1:8080 have not passed",
    ]);
  });

  it('replaces an initial backend without a moment with nothing up: drained only once a new one is up, then removed when idle', () => {
    const seed = { name: 'seed', address: '127.0.0.1:9000' };
    const a = ready('a');
    // Pass 1: a is added; seed, the only backend up, stays in rotation meanwhile.
    const p1 = pass({ endpoints: [a], backends: [backend(seed, 'up')] });
    expect(p1.actions).toEqual([{ kind: 'add', name: 'a', address: a.address }]);
    expect(p1.pending).toEqual(['seed stays in rotation until a is up: it is among the last backends up']);
    // Pass 2: a is listed, not up yet: still nothing taken out.
    const p2 = pass({ endpoints: [a], backends: [backend(seed, 'up'), backend(a, 'down')], leaving: p1.leaving, now: NOW + 200 });
    expect(p2.actions).toEqual([]);
    // Pass 3: a is up: seed is drained.
    const p3 = pass({ endpoints: [a], backends: [backend(seed, 'up', 2), backend(a, 'up')], leaving: p2.leaving, now: NOW + 400 });
    expect(p3.actions).toEqual([{ kind: 'drain', name: 'seed', address: seed.address, why: 'gone' }]);
    // Pass 4: requests still in flight on it: wait.
    const p4 = pass({ endpoints: [a], backends: [backend(seed, 'draining', 1), backend(a, 'up')], leaving: p3.leaving, now: NOW + 600 });
    expect(p4.actions).toEqual([]);
    expect(p4.pending).toEqual(['seed is draining: 1 requests in flight']);
    // Pass 5: idle: removed.
    const p5 = pass({ endpoints: [a], backends: [backend(seed, 'draining', 0), backend(a, 'up')], leaving: p4.leaving, now: NOW + 800 });
    expect(p5.actions).toEqual([{ kind: 'remove', name: 'seed', address: seed.address, why: 'idle' }]);
    // Pass 6: the proxy still lists it (a connection closing): no second DELETE.
    const p6 = pass({ endpoints: [a], backends: [backend(seed, 'draining', 0), backend(a, 'up')], leaving: p5.leaving, now: NOW + 1000 });
    expect(p6.actions).toEqual([]);
    expect(p6.pending).toEqual(['seed is being removed: 0 requests in flight']);
    // Pass 7: gone from the proxy: reported once, then forgotten.
    const p7 = pass({ endpoints: [a], backends: [backend(a, 'up')], leaving: p6.leaving, now: NOW + 1200 });
    expect(p7).toEqual({ actions: [], pending: [], leaving: new Map(), removed: ['seed'] });
  });

  it('keeps the last backends up for at most the drain timeout while a new one fails its health checks', () => {
    const old = { name: 'old', address: '10.0.0.9:8080' };
    const a = ready('a');
    const first = pass({ endpoints: [a], backends: [backend(old, 'up'), backend(a, 'down')] });
    expect(first.actions).toEqual([]);
    const later = pass({ endpoints: [a], backends: [backend(old, 'up'), backend(a, 'down')], leaving: first.leaving, now: NOW + 30_000 });
    expect(later.actions).toEqual([{ kind: 'drain', name: 'old', address: old.address, why: 'gone' }]);
  });

  it('drains an endpoint that is not ready or terminating, keeps it listed, and undrains it when it is ready again', () => {
    const [a, b, c] = [ready('a', '10.0.0.1'), ready('b', '10.0.0.2'), ready('c', '10.0.0.3')];
    const d = pass({ endpoints: [a, notReady('b', '10.0.0.2'), terminating('c', '10.0.0.3')], backends: [backend(a, 'up'), backend(b, 'up'), backend(c, 'up', 4)] });
    expect(d.actions).toEqual([
      { kind: 'drain', name: 'b', address: b.address, why: 'not ready' },
      { kind: 'drain', name: 'c', address: c.address, why: 'terminating' },
    ]);
    // Drained and still an endpoint: no removal, however long it stays.
    const still = pass({ endpoints: [a, notReady('b', '10.0.0.2')], backends: [backend(a, 'up'), backend(b, 'draining')], leaving: d.leaving, now: NOW + 3_600_000 });
    expect(still.actions).toEqual([]);
    const back = pass({ endpoints: [a, b], backends: [backend(a, 'up'), backend(b, 'draining')], leaving: still.leaving });
    expect(back.actions).toEqual([{ kind: 'undrain', name: 'b', address: b.address }]);
    expect(back.leaving.size).toBe(0);
  });

  it('removes a gone backend after the drain timeout even with requests in flight (the proxy lets them finish)', () => {
    const [a, b] = [ready('a', '10.0.0.1'), ready('b', '10.0.0.2')];
    const leaving = new Map<string, Leaving>([['b', { since: NOW - 30_000, removeRequested: false }]]);
    const d = pass({ endpoints: [a], backends: [backend(a, 'up'), backend(b, 'draining', 3)], leaving });
    expect(d.actions).toEqual([{ kind: 'remove', name: 'b', address: b.address, why: 'drain timeout' }]);
  });

  it('adds before it takes anything out', () => {
    const [a, b] = [ready('a', '10.0.0.1'), ready('b', '10.0.0.2')];
    const [c, x] = [{ name: 'c', address: '10.0.0.3:8080' }, { name: 'x', address: '10.0.0.9:8080' }];
    const d = pass({ endpoints: [a, b], backends: [backend(c, 'up'), backend(x, 'draining'), backend(a, 'up')] });
    expect(d.actions).toEqual([
      { kind: 'add', name: 'b', address: b.address },
      { kind: 'drain', name: 'c', address: c.address, why: 'gone' },
      { kind: 'remove', name: 'x', address: x.address, why: 'idle' },
    ]);
  });

  it('moves a pod that kept its name but changed address: the old one goes first, then the new is added', () => {
    const other = ready('other', '10.0.0.5');
    const moved = ready('web-0', '10.0.0.7');
    const old = { name: 'web-0', address: '10.0.0.6:8080' };
    const d = pass({ endpoints: [other, moved], backends: [backend(other, 'up'), backend(old, 'up')] });
    expect(d.actions).toEqual([{ kind: 'drain', name: 'web-0', address: old.address, why: 'gone' }]);
    expect(d.pending).toContain('web-0 moves to 10.0.0.7:8080 once the proxy has removed it at 10.0.0.6:8080');
    const gone = pass({ endpoints: [other, moved], backends: [backend(other, 'up')], leaving: d.leaving });
    expect(gone.actions).toEqual([{ kind: 'add', name: 'web-0', address: moved.address }]);
  });

  it('does not undrain a backend whose removal it asked for: it is added again once the proxy let it go', () => {
    const [a, b] = [ready('a', '10.0.0.1'), ready('b', '10.0.0.2')];
    const leaving = new Map<string, Leaving>([['b', { since: NOW, removeRequested: true }]]);
    const d = pass({ endpoints: [a, b], backends: [backend(a, 'up'), backend(b, 'draining', 1)], leaving });
    expect(d.actions).toEqual([]);
    expect(d.pending).toEqual(['b is added again once the proxy has finished removing it', 'b is being removed: 1 requests in flight']);
    const still = pass({ endpoints: [a, b], backends: [backend(a, 'up'), backend(b, 'draining', 1)], leaving: d.leaving });
    expect(still.actions).toEqual([]);
    const gone = pass({ endpoints: [a, b], backends: [backend(a, 'up')], leaving: still.leaving });
    expect(gone.actions).toEqual([{ kind: 'add', name: 'b', address: b.address }]);
    expect(gone.removed).toEqual(['b']);
  });
});

describe('routableEndpoints', () => {
  it('routes to ready endpoints, and to terminating ones still serving only when none is ready (as kube-proxy)', () => {
    expect(routableEndpoints([ready('a'), terminating('b')]).map((e) => e.name)).toEqual(['a']);
    expect(routableEndpoints([notReady('a'), terminating('b'), terminating('c', '10.0.0.3', false)]).map((e) => e.name)).toEqual(['b']);
    expect(routableEndpoints([notReady('a')])).toEqual([]);
  });

  it('keeps the last old pods of a rollout in rotation while no new one is ready', () => {
    const [old1, old2] = [terminating('old-1', '10.0.0.1'), terminating('old-2', '10.0.0.2')];
    const d = pass({ endpoints: [old1, old2, notReady('new-1', '10.0.0.3')], backends: [backend(old1, 'up'), backend(old2, 'draining')] });
    expect(d.actions).toEqual([{ kind: 'undrain', name: 'old-2', address: old2.address }]);
  });
});
