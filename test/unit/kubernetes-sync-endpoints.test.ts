import type { V1EndpointSlice } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { backendName, readSlices } from '../../cli/kubernetes/sync/endpoints.js';

/** EndpointSlices as the API (and watch events, as raw JSON) give them: slices of one Service. */

type Conditions = { ready?: boolean; serving?: boolean; terminating?: boolean };
const endpoint = (pod: string | undefined, ip: string, conditions?: Conditions) => ({
  addresses: [ip],
  ...(conditions ? { conditions } : {}),
  ...(pod ? { targetRef: { kind: 'Pod', name: pod } } : {}),
});
const slice = (name: string, endpoints: ReturnType<typeof endpoint>[], options: { addressType?: string; ports?: { name?: string; port?: number; protocol?: string }[] } = {}): V1EndpointSlice => ({
  metadata: { name },
  addressType: options.addressType ?? 'IPv4',
  ports: options.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints,
});

describe('readSlices', () => {
  it('merges the slices of a Service into one list of endpoints named after their pods', () => {
    const { endpoints, problems } = readSlices([
      slice('api-x1', [endpoint('api-7f-b', '10.0.0.2', { ready: true, serving: true, terminating: false })]),
      slice('api-x2', [endpoint('api-7f-a', '10.0.0.1', { ready: false, serving: false, terminating: false }), endpoint('api-7f-c', '10.0.0.3', { ready: false, serving: true, terminating: true })]),
    ]);
    expect(problems).toEqual([]);
    expect(endpoints).toEqual([
      { name: 'api-7f-a', address: '10.0.0.1:8080', ready: false, serving: false, terminating: false },
      { name: 'api-7f-b', address: '10.0.0.2:8080', ready: true, serving: true, terminating: false },
      { name: 'api-7f-c', address: '10.0.0.3:8080', ready: false, serving: true, terminating: true },
    ]);
  });

  it('reads unset conditions as the API says to: ready and serving, not terminating', () => {
    expect(readSlices([slice('s', [endpoint('p', '10.0.0.1')])]).endpoints).toEqual([
      { name: 'p', address: '10.0.0.1:8080', ready: true, serving: true, terminating: false },
    ]);
    expect(readSlices([slice('s', [endpoint('p', '10.0.0.1', { ready: false })])]).endpoints[0]).toMatchObject({ ready: false, serving: false });
  });

  it('takes an endpoint listed in two slices once: the copy that can take traffic, else IPv4', () => {
    const moving = readSlices([
      slice('old', [endpoint('p', '10.0.0.1', { ready: false })]),
      slice('new', [endpoint('p', '10.0.0.1', { ready: true })]),
    ]);
    expect(moving.endpoints).toEqual([{ name: 'p', address: '10.0.0.1:8080', ready: true, serving: true, terminating: false }]);
    const dualStack = readSlices([
      slice('v6', [endpoint('p', 'fd00::1')], { addressType: 'IPv6' }),
      slice('v4', [endpoint('p', '10.0.0.1')]),
    ]);
    expect(dualStack.endpoints.map((e) => e.address)).toEqual(['10.0.0.1:8080']);
  });

  it('writes IPv6 addresses in brackets, and names an endpoint without a pod after its address', () => {
    const { endpoints } = readSlices([slice('v6', [endpoint('p', 'fd00::1'), endpoint(undefined, 'fd00::2')], { addressType: 'IPv6' })]);
    expect(endpoints.find((e) => e.name === 'p')?.address).toBe('[fd00::1]:8080');
    const unnamed = endpoints.find((e) => e.name !== 'p')!;
    expect(unnamed.address).toBe('[fd00::2]:8080');
    expect(unnamed.name).toMatch(/^fd00--2-8080-[0-9a-f]{8}$/);
    expect(readSlices([slice('s', [endpoint(undefined, '10.0.0.5')])]).endpoints[0]!.name).toBe('10.0.0.5-8080');
  });

  it('picks the one TCP port, or the one named --port-name, and says why a slice is skipped', () => {
    const twoPorts = [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'metrics', port: 9100, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }];
    expect(readSlices([slice('s', [endpoint('p', '10.0.0.1')], { ports: twoPorts })], 'metrics').endpoints[0]!.address).toBe('10.0.0.1:9100');
    expect(readSlices([slice('s', [endpoint('p', '10.0.0.1')], { ports: twoPorts })]).problems).toEqual([
      'EndpointSlice s: it has TCP ports http, metrics: choose one with --port-name',
    ]);
    expect(readSlices([slice('s', [endpoint('p', '10.0.0.1')], { ports: twoPorts })], 'grpc').problems).toEqual([
      'EndpointSlice s: it has no TCP port named grpc (it has: http, metrics)',
    ]);
    expect(readSlices([slice('s', [endpoint('p', '10.0.0.1')], { ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'http', port: 80 }] })]).endpoints[0]!.address).toBe('10.0.0.1:80');
    expect(readSlices([slice('s', [endpoint('p', '10.0.0.1')], { ports: [{ name: 'all' }] })]).problems).toEqual([
      'EndpointSlice s: its port has no number (all ports); the proxy needs one',
    ]);
    const fqdn = readSlices([slice('f', [endpoint('p', 'db.example.com')], { addressType: 'FQDN' })]);
    expect(fqdn.endpoints).toEqual([]);
    expect(fqdn.problems).toEqual(['EndpointSlice f: addressType FQDN is skipped: the proxy connects to IP addresses only']);
  });

  it('passes over a slice with no endpoints, as JSON from a watch has it (null, with no ports either)', () => {
    const placeholder = JSON.parse('{"metadata":{"name":"empty"},"addressType":"IPv4","endpoints":null,"ports":null}') as V1EndpointSlice;
    expect(readSlices([placeholder])).toEqual({ endpoints: [], problems: [] });
    const noPorts = JSON.parse('{"metadata":{"name":"e"},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"]}],"ports":null}') as V1EndpointSlice;
    expect(readSlices([noPorts])).toEqual({ endpoints: [], problems: ['EndpointSlice e: it lists no TCP port'] });
  });
});

describe('backendName', () => {
  it('keeps a pod name the proxy accepts as it is', () => {
    expect(backendName('api-6f7d9c-x2k4p')).toBe('api-6f7d9c-x2k4p');
    expect(backendName('a'.repeat(63))).toBe('a'.repeat(63));
  });

  it('shortens a long name to 63 characters, keeping two that share a prefix apart', () => {
    const a = backendName(`${'a'.repeat(60)}-one`);
    const b = backendName(`${'a'.repeat(60)}-two`);
    expect(a).toHaveLength(63);
    expect(b).toHaveLength(63);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^[A-Za-z0-9._-]+$/);
  });

  it('replaces characters the proxy refuses, with a digest so the result stays unique', () => {
    expect(backendName('web:8080')).toMatch(/^web-8080-[0-9a-f]{8}$/);
    expect(backendName('web:8080')).not.toBe(backendName('web-8080'));
  });
});
