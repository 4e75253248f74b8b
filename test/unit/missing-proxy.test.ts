import { describe, expect, it } from 'vitest';
import { missingProxy, type Listing } from '../../cli/core/ps.js';
import type { FleetState } from '../../cli/fleet/state.js';

/** What `ps` and `status` decide from a listing: a recorded fleet without a running proxy is an error. */

const state: FleetState = { version: 1, fleet: 'demo', runtime: 'qemu', proxy: { listen: '172.44.0.2:8080', admin: '172.44.0.2:8081' }, machines: [], resources: {} };
const backend = { name: 'backend-1', role: 'backend' as const, address: '172.44.0.3:8080', pid: 10, state: 'running' as const };
const proxy = { name: 'proxy', role: 'proxy' as const, address: '172.44.0.2:8080', pid: 11, state: 'running' as const };

describe('missingProxy', () => {
  it('says nothing when no fleet is recorded, or when its proxy runs', () => {
    expect(missingProxy({ state: null, machines: [] })).toBeUndefined();
    expect(missingProxy({ state, machines: [backend, proxy] })).toBeUndefined();
  });

  it('names a fleet with no proxy recorded, and a proxy that exited', () => {
    const none: Listing = { state, machines: [backend] };
    expect(missingProxy(none)).toBe('fleet demo has no proxy: no client request is served; `uproxy up` starts one');
    const exited: Listing = { state, machines: [backend, { ...proxy, state: 'exited' }] };
    expect(missingProxy(exited)).toBe('the proxy of fleet demo is not running (exited): no client request is served; `uproxy up` starts it again');
  });
});
