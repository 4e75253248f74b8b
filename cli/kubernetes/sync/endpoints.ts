/**
 * PURE: a Service's EndpointSlices -> the endpoints the proxy may route to, each named as a
 * proxy backend. Slices of one Service are merged; an endpoint listed in more than one of them
 * (the EndpointSlice controller moves endpoints between slices, and a dual-stack Service has
 * one slice per address family) is taken once.
 */
import { createHash } from 'node:crypto';
import type { V1EndpointSlice } from '@kubernetes/client-node';

export interface Endpoint {
  /** The proxy's backend name: the pod's name (targetRef), within the proxy's name rules. */
  name: string;
  /** `IP:PORT`, or `[IPv6]:PORT`, as the proxy's POST /backends takes it. */
  address: string;
  /** The endpoint conditions, with the API's defaults for an unset one (ready, serving: true; terminating: false). */
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

export interface SliceReading {
  endpoints: Endpoint[];
  /** Slices or endpoints that could not be used, as sentences for the log. */
  problems: string[];
}

/** The proxy's rule for a backend name: 1-63 characters of [A-Za-z0-9._-] (proxy/src/config.c). */
const NAME_MAX = 63;
const NOT_IN_NAME = /[^A-Za-z0-9._-]/g;

/**
 * A pod name (a DNS subdomain of up to 253 characters) as a backend name. A name that had to be
 * rewritten or shortened gets a digest of the original, so two pods never share a backend.
 */
export function backendName(raw: string): string {
  const cleaned = raw.replace(NOT_IN_NAME, '-');
  if (cleaned === raw && raw.length > 0 && raw.length <= NAME_MAX) return raw;
  const digest = createHash('sha256').update(raw).digest('hex').slice(0, 8);
  return `${cleaned.slice(0, NAME_MAX - digest.length - 1)}-${digest}`;
}

/**
 * Every usable endpoint of `slices`. `portName` picks the Service port when it has several
 * (TCP ones only: the proxy speaks HTTP over TCP); without it a slice must have exactly one.
 */
export function readSlices(slices: readonly V1EndpointSlice[], portName?: string): SliceReading {
  const problems: string[] = [];
  const byName = new Map<string, Endpoint & { family: string }>();
  for (const slice of slices) {
    const sliceName = slice.metadata?.name ?? '(unnamed)';
    // The API keeps `endpoints` null, not [], in a slice that has none (a Service with no pods
    // has such a placeholder, with no ports either): nothing to use, nothing wrong.
    const endpoints = slice.endpoints ?? [];
    if (endpoints.length === 0) continue;
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') {
      problems.push(`EndpointSlice ${sliceName}: addressType ${slice.addressType} is skipped: the proxy connects to IP addresses only`);
      continue;
    }
    const port = slicePort(slice, portName);
    if (typeof port === 'string') {
      problems.push(`EndpointSlice ${sliceName}: ${port}`);
      continue;
    }
    for (const endpoint of endpoints) {
      // Consumers use the first address; the API allows more for future use only.
      const ip = endpoint.addresses?.[0];
      if (ip === undefined) continue;
      const address = slice.addressType === 'IPv6' ? `[${ip}]:${port}` : `${ip}:${port}`;
      const conditions = endpoint.conditions ?? {};
      const candidate = {
        // An endpoint a person wrote into a slice by hand may name no pod.
        name: backendName(endpoint.targetRef?.name ?? `${ip}-${port}`),
        address,
        ready: conditions.ready ?? true,
        serving: conditions.serving ?? conditions.ready ?? true,
        terminating: conditions.terminating ?? false,
        family: slice.addressType,
      };
      const known = byName.get(candidate.name);
      if (known === undefined || preferred(candidate, known)) byName.set(candidate.name, candidate);
    }
  }
  const endpoints = [...byName.values()].map(({ family: _family, ...endpoint }) => endpoint);
  return { endpoints: endpoints.sort((a, b) => a.name.localeCompare(b.name)), problems };
}

/** The port number this slice's endpoints serve on, or why there is none to use. */
function slicePort(slice: V1EndpointSlice, portName: string | undefined): number | string {
  const tcp = (slice.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP');
  const names = tcp.map((p) => p.name || '(unnamed)').join(', ');
  const chosen = portName === undefined ? tcp : tcp.filter((p) => p.name === portName);
  if (chosen.length === 0) {
    if (portName === undefined) return 'it lists no TCP port';
    return `it has no TCP port named ${portName}${tcp.length > 0 ? ` (it has: ${names})` : ''}`;
  }
  if (chosen.length > 1) return `it has TCP ports ${names}: choose one with --port-name`;
  const number = chosen[0]!.port;
  // An unset port means "all ports", which the proxy cannot connect to.
  if (number === undefined || number === null) return 'its port has no number (all ports); the proxy needs one';
  return number;
}

/**
 * Between two copies of one endpoint: the one that can take traffic, then IPv4 over IPv6, then
 * the lower address, so the choice is the same at every pass and nothing flaps.
 */
function preferred(a: Endpoint & { family: string }, b: Endpoint & { family: string }): boolean {
  const rank = (e: Endpoint): number => (e.ready && !e.terminating ? 2 : e.serving ? 1 : 0);
  if (rank(a) !== rank(b)) return rank(a) > rank(b);
  if (a.family !== b.family) return a.family === 'IPv4';
  return a.address < b.address;
}
