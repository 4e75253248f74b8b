import { describe, expect, it } from 'vitest';
import { machineMac, MAX_INTERFACE_NAME, parseSubnet, planAddressing, tapName } from '../../cli/fleet/addressing.js';

describe('planAddressing', () => {
  it('gives the gateway .1, the proxy .2 and backends .3 onwards', () => {
    const plan = planAddressing('demo', '172.44.0.1/24', 'proxy', ['backend-1', 'backend-2', 'backend-3']);
    expect(plan.gateway).toBe('172.44.0.1');
    expect(plan.subnet).toEqual({ network: '172.44.0.0', prefix: 24 });
    expect(plan.proxy.ip).toBe('172.44.0.2');
    expect(plan.backends.map((b) => b.ip)).toEqual(['172.44.0.3', '172.44.0.4', '172.44.0.5']);
  });

  it('is deterministic, and MACs and taps differ between machines and between fleets', () => {
    const a = planAddressing('demo', '172.44.0.0/24', 'proxy', ['backend-1', 'backend-2']);
    expect(planAddressing('demo', '172.44.0.0/24', 'proxy', ['backend-1', 'backend-2'])).toEqual(a);
    const b = planAddressing('other', '172.44.0.0/24', 'proxy', ['backend-1', 'backend-2']);
    const all = [a.proxy, ...a.backends, b.proxy, ...b.backends];
    expect(new Set(all.map((m) => m.mac)).size).toBe(all.length);
    expect(new Set(all.map((m) => m.tap)).size).toBe(all.length);
  });

  it('refuses a subnet too small for the fleet, naming the fix', () => {
    expect(() => planAddressing('demo', '10.0.0.0/29', 'proxy', Array.from({ length: 6 }, (_, i) => `b${i}`))).toThrow(/holds 6 hosts but fleet "demo" needs 8.*shorter prefix/);
  });

  it('rejects malformed subnets with the expected form', () => {
    expect(() => parseSubnet('172.44.0.0')).toThrow(/expected an IPv4 network such as 172.44.0.1\/24/);
    expect(() => parseSubnet('300.1.1.1/24')).toThrow(/invalid IPv4 address/);
  });
});

describe('machineMac', () => {
  it('is a locally administered unicast address', () => {
    for (const name of ['proxy', 'backend-1', 'backend-64']) {
      const mac = machineMac('fleet', name);
      expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      const first = parseInt(mac.slice(0, 2), 16);
      expect(first & 0x02).toBe(0x02);
      expect(first & 0x01).toBe(0);
    }
  });
});

describe('tapName', () => {
  it('fits the 15-character interface limit for every machine name the config allows', () => {
    const names = ['proxy', 'backend-1', 'backend-64', 'a-very-long-machine-name', 'x'];
    for (const fleet of ['demo', 'a-fleet-with-24-chars-xx']) {
      for (const name of names) {
        const tap = tapName(fleet, name);
        expect(tap.length).toBeLessThanOrEqual(MAX_INTERFACE_NAME);
        expect(tap).toMatch(/^u[0-9a-f]{4}-[A-Za-z0-9_-]+$/);
      }
    }
    expect(tapName('demo', 'backend-1')).toMatch(/-backend-1$/);
    expect(tapName('demo', 'backend-64')).toMatch(/-backend64$/);
  });
});
