import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './support/backend.js';
import { CLIENT_TOKEN, startProxy } from './support/proxy.js';

const auth = { 'x-auth-token': CLIENT_TOKEN };

/** Sends `n` sequential requests and counts which backend answered each. */
async function split(url: string, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const agent = new Agent({ connections: 1 });
  try {
    for (let i = 0; i < n; i++) {
      const res = await request(`${url}/n/${i}`, { headers: auth, dispatcher: agent });
      expect(res.statusCode).toBe(200);
      const { name } = (await res.body.json()) as { name: string };
      counts[name] = (counts[name] ?? 0) + 1;
    }
  } finally {
    await agent.close();
  }
  return counts;
}

async function concurrentSplit(url: string, clients: number, each: number): Promise<Record<string, number>> {
  const parts = await Promise.all(Array.from({ length: clients }, () => split(url, each)));
  const counts: Record<string, number> = {};
  for (const part of parts) for (const [k, v] of Object.entries(part)) counts[k] = (counts[k] ?? 0) + v;
  return counts;
}

describe('proxy: load balancing over 3 backends', () => {
  let backends: TestBackend[];

  beforeAll(async () => {
    backends = await Promise.all(['b1', 'b2', 'b3'].map((n) => startBackend(n)));
  });
  afterAll(async () => {
    await Promise.all(backends.map((b) => b.close()));
  });

  const spec = (weights?: number[]) => backends.map((b, i) => ({ name: b.name, address: b.address, weight: weights?.[i] }));

  it('round-robin splits 300 requests exactly evenly', async () => {
    const proxy = await startProxy({ backends: spec(), algorithm: 'round-robin' });
    try {
      expect(await split(proxy.url, 300)).toEqual({ b1: 100, b2: 100, b3: 100 });
    } finally {
      await proxy.stop();
    }
  });

  it('round-robin honours weights exactly (1:2:3 over 300 requests)', async () => {
    const proxy = await startProxy({ backends: spec([1, 2, 3]), algorithm: 'round-robin' });
    try {
      expect(await split(proxy.url, 300)).toEqual({ b1: 50, b2: 100, b3: 150 });
    } finally {
      await proxy.stop();
    }
  });

  it('least-conn spreads sequential requests evenly and honours weights', async () => {
    const even = await startProxy({ backends: spec(), algorithm: 'least-conn' });
    try {
      expect(await split(even.url, 300)).toEqual({ b1: 100, b2: 100, b3: 100 });
    } finally {
      await even.stop();
    }
    const weighted = await startProxy({ backends: spec([1, 2, 3]), algorithm: 'least-conn' });
    try {
      expect(await split(weighted.url, 300)).toEqual({ b1: 50, b2: 100, b3: 150 });
    } finally {
      await weighted.stop();
    }
  });

  it('least-conn sends new requests away from a backend busy with slow ones', async () => {
    const proxy = await startProxy({ backends: spec(), algorithm: 'least-conn' });
    try {
      // Two slow requests occupy two backends; the fast ones that follow must all go to the third.
      const slow = [0, 1].map(() => request(`${proxy.url}/slow?ms=1500`, { headers: auth }).then((r) => r.body.json()));
      const deadline = Date.now() + 10_000;
      while ((await proxy.stats()).requests.in_flight < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const busy = (await proxy.stats()).backends.filter((b) => b.in_flight > 0).map((b) => b.name);
      expect(busy).toHaveLength(2);
      const counts = await split(proxy.url, 10);
      const free = backends.map((b) => b.name).find((n) => !busy.includes(n))!;
      expect(counts).toEqual({ [free]: 10 });
      await Promise.all(slow);
    } finally {
      await proxy.stop();
    }
  });

  it('p2c serves every request and spreads concurrent load over every backend', async () => {
    const proxy = await startProxy({ backends: spec(), algorithm: 'p2c' });
    try {
      // 12 concurrent clients x 25 requests: in-flight counts make the scores differ.
      const counts = await concurrentSplit(proxy.url, 12, 25);
      expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(300);
      expect(Object.keys(counts).sort()).toEqual(['b1', 'b2', 'b3']);
    } finally {
      await proxy.stop();
    }
  });

  it('p2c honours weights: the heavier backend is chosen more often', async () => {
    const proxy = await startProxy({ backends: spec([1, 1, 20]), algorithm: 'p2c' });
    try {
      const counts = await concurrentSplit(proxy.url, 12, 25);
      // Candidates are drawn by weight, so b3 is one of the two in almost every draw.
      expect(counts.b3 ?? 0).toBeGreaterThan(counts.b1 ?? 0);
      expect(counts.b3 ?? 0).toBeGreaterThan(counts.b2 ?? 0);
    } finally {
      await proxy.stop();
    }
  });
});

describe('proxy: no backend up', () => {
  it('answers 503 with a JSON body when every backend is down', async () => {
    // Ports that were free a moment ago and nobody listens on: every health check fails.
    const dead = await Promise.all(['d1', 'd2'].map(async (name) => {
      const b = await startBackend(name);
      await b.close();
      return { name, address: b.address };
    }));
    const proxy = await startProxy({ backends: dead, waitUp: 0 });
    try {
      const res = await request(`${proxy.url}/x`, { headers: auth });
      expect(res.statusCode).toBe(503);
      expect(await res.body.json()).toEqual({ error: 'no backend available' });
      const stats = await proxy.stats();
      expect(stats.backends.map((b) => b.state)).toEqual(['down', 'down']);
      expect(stats.requests.by_class['5xx']).toBe(1);
    } finally {
      await proxy.stop();
    }
  });
});
