/**
 * PURE: the endpoints a Service has now and the backends the proxy lists now -> what to ask the
 * proxy's admin API next. Called again at every pass (level-triggered), so a step that failed or
 * a change the proxy made on its own is simply taken up at the next one.
 *
 * The rules that keep client requests from failing, as `up` keeps them (runtimes/backend-sync.ts):
 * - a ready endpoint is added (and undrained) before anything is taken out;
 * - an endpoint that is not ready or is terminating is drained: no new requests, in-flight ones
 *   finish, and it is back in rotation at once if it becomes ready again;
 * - an endpoint that is gone (or a backend the Service never had) is drained, then removed once
 *   nothing is in flight on it, or once it has been leaving for the drain timeout (the proxy's
 *   DELETE still lets what is in flight finish);
 * - the last backends that are up are not taken out while a wanted backend is still coming up
 *   (added, waiting for its first passing health check), for at most the drain timeout;
 * - when no endpoint is ready, those that are terminating but still serving are routed to, as
 *   kube-proxy does, so a rollout's last old pods keep serving instead of every request failing.
 */
import type { BackendStats } from '../../stats/schema.js';
import type { Endpoint } from './endpoints.js';

export type ProxyBackend = Pick<BackendStats, 'name' | 'address' | 'state' | 'in_flight'>;

/** What the controller remembers between passes about a backend it is taking out. */
export interface Leaving {
  /** When it was first seen unwanted (ms): the drain timeout counts from here. */
  since: number;
  /** DELETE was sent: the proxy lists it until its last request is done. */
  removeRequested: boolean;
}

export type Action =
  | { kind: 'add'; name: string; address: string }
  | { kind: 'undrain'; name: string; address: string }
  | { kind: 'drain'; name: string; address: string; why: 'not ready' | 'terminating' | 'gone' }
  | { kind: 'remove'; name: string; address: string; why: 'idle' | 'drain timeout' };

export interface ReconcileInput {
  endpoints: readonly Endpoint[];
  backends: readonly ProxyBackend[];
  leaving: ReadonlyMap<string, Leaving>;
  now: number;
  drainTimeoutMs: number;
}

export interface Decision {
  /** In order: adds and undrains first, then drains and removals. */
  actions: Action[];
  /** What is still under way once these are done, as sentences (none: in step). */
  pending: string[];
  /** The memory for the next pass, once these actions are done. */
  leaving: Map<string, Leaving>;
  /** Backends whose removal was requested earlier and that the proxy no longer lists. */
  removed: string[];
}

/** The endpoints the proxy should route to: the ready ones, else those terminating but still serving. */
export function routableEndpoints(endpoints: readonly Endpoint[]): Endpoint[] {
  const ready = endpoints.filter((e) => e.ready && !e.terminating);
  return ready.length > 0 ? ready : endpoints.filter((e) => e.serving && e.terminating);
}

export function decide(input: ReconcileInput): Decision {
  const { backends, now } = input;
  const wanted = routableEndpoints(input.endpoints);
  const isWanted = (b: ProxyBackend): boolean => wanted.some((w) => w.name === b.name && w.address === b.address);
  const actions: Action[] = [];
  const pending: string[] = [];
  const comingUp: string[] = [];

  for (const w of wanted) {
    const listed = backends.find((b) => b.name === w.name);
    if (listed === undefined) {
      actions.push({ kind: 'add', name: w.name, address: w.address });
      comingUp.push(w.name);
    } else if (listed.address !== w.address) {
      pending.push(`${w.name} moves to ${w.address} once the proxy has removed it at ${listed.address}`);
    } else if (input.leaving.get(w.name)?.removeRequested) {
      pending.push(`${w.name} is added again once the proxy has finished removing it`);
    } else if (listed.state === 'draining') {
      actions.push({ kind: 'undrain', name: w.name, address: w.address });
    } else if (listed.state === 'down') {
      pending.push(`${w.name} is not up yet: the proxy's health checks of ${w.address} have not passed`);
      comingUp.push(w.name);
    }
  }

  const wantedUp = backends.some((b) => isWanted(b) && b.state === 'up' && !input.leaving.get(b.name)?.removeRequested);
  const holdLastUp = !wantedUp && comingUp.length > 0;
  const leaving = new Map<string, Leaving>();
  for (const b of backends) {
    const before = input.leaving.get(b.name);
    // One the proxy is removing is tracked until it is gone, even if it is wanted again meanwhile.
    if (isWanted(b) && !before?.removeRequested) continue;
    const entry: Leaving = { since: before?.since ?? now, removeRequested: before?.removeRequested ?? false };
    leaving.set(b.name, entry);
    if (entry.removeRequested) {
      pending.push(`${b.name} is being removed: ${b.in_flight} requests in flight`);
      continue;
    }
    const overdue = now - entry.since >= input.drainTimeoutMs;
    if (b.state === 'up' && holdLastUp && !overdue) {
      pending.push(`${b.name} stays in rotation until ${comingUp.join(', ')} is up: it is among the last backends up`);
      continue;
    }
    const present = input.endpoints.find((e) => e.name === b.name && e.address === b.address);
    if (present !== undefined) {
      if (b.state !== 'draining') actions.push({ kind: 'drain', name: b.name, address: b.address, why: present.terminating ? 'terminating' : 'not ready' });
      continue;
    }
    if (b.state !== 'draining') {
      actions.push({ kind: 'drain', name: b.name, address: b.address, why: 'gone' });
      pending.push(`${b.name} is removed once drained`);
    } else if (b.in_flight === 0 || overdue) {
      actions.push({ kind: 'remove', name: b.name, address: b.address, why: b.in_flight === 0 ? 'idle' : 'drain timeout' });
      entry.removeRequested = true;
      pending.push(`${b.name} is being removed`);
    } else {
      pending.push(`${b.name} is draining: ${b.in_flight} requests in flight`);
    }
  }

  const removed = [...input.leaving].filter(([name, l]) => l.removeRequested && !backends.some((b) => b.name === name)).map(([name]) => name);
  const order = { add: 0, undrain: 1, drain: 2, remove: 3 } as const;
  actions.sort((a, b) => order[a.kind] - order[b.kind]);
  return { actions, pending, leaving, removed };
}
