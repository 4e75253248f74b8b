import { Agent, request } from 'undici';
import { CLIENT_TOKEN } from './proxy.js';

export interface LoadResult {
  ok: number;
  failures: string[];
  /** Successful responses per backend name (from the echoed JSON). */
  byBackend: Record<string, number>;
}

export interface Load {
  result: LoadResult;
  /** Stops the clients and waits for their last requests. */
  stop(): Promise<LoadResult>;
}

/**
 * A bounded steady load: `clients` keep-alive connections on loopback, each sending GETs one
 * after another, until stop() or `maxMs` or `maxRequests` in total, whichever comes first.
 */
export function steadyLoad(url: string, opts: { clients: number; maxMs: number; maxRequests: number }): Load {
  const agent = new Agent({ connections: opts.clients, keepAliveTimeout: 30_000 });
  const result: LoadResult = { ok: 0, failures: [], byBackend: {} };
  const deadline = Date.now() + opts.maxMs;
  let stopped = false;
  let sent = 0;
  const client = async (id: number): Promise<void> => {
    while (!stopped && Date.now() < deadline && sent < opts.maxRequests) {
      sent++;
      try {
        const res = await request(`${url}/load/${id}`, { headers: { 'x-auth-token': CLIENT_TOKEN }, dispatcher: agent });
        const text = await res.body.text();
        if (res.statusCode !== 200) {
          result.failures.push(`status ${res.statusCode}: ${text}`);
          continue;
        }
        const name = (JSON.parse(text) as { name: string }).name;
        result.byBackend[name] = (result.byBackend[name] ?? 0) + 1;
        result.ok++;
      } catch (e) {
        result.failures.push(`error: ${String(e)}`);
      }
    }
  };
  const running = Promise.all(Array.from({ length: opts.clients }, (_, i) => client(i)));
  return {
    result,
    stop: async () => {
      stopped = true;
      await running;
      await agent.close();
      return result;
    },
  };
}

export async function pollUntil(what: string, fn: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
