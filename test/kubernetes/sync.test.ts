/**
 * `uproxy sync --kubernetes` end to end: the real CLI (bin/uproxy, so `npm run build` first), the
 * real proxy (proxy/build/uproxy-proxy), real backend processes, and keep-alive client load
 * through the proxy, all on 127.0.0.1.
 *
 * The Kubernetes API server is a STAND-IN (test/support/kube-api.ts) that replays the
 * EndpointSlice list and watch routes a real one serves: the one stand-in issue 18 allows here.
 * Each pod is one backend process with its own port, so each gets its own slice, as the
 * EndpointSlice controller does for pods whose named target port resolves to different numbers.
 *
 * A pod that is going away is marked terminating, and its process is killed only once the proxy
 * has drained it (a preStop delay in a real pod); a pod whose slice vanishes without warning (the
 * 410 scenarios) keeps running until the proxy has removed it. Zero client requests may fail in
 * every step, and at the end of each step the proxy's backends are the ready endpoints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../cli/run.js';
import { startBackendProcess, type BackendProcess } from '../proxy/support/backend-process.js';
import { pollUntil, steadyLoad, type Load } from '../proxy/support/load.js';
import { ADMIN_TOKEN, freePort, startProxy, type RunningProxy } from '../proxy/support/proxy.js';
import { startKubeApi, type KubeApiStandIn } from '../support/kube-api.js';

const NAMESPACE = 'shop';
const SERVICE = 'api';

interface Controller {
  child: ChildProcess;
  healthUrl: string;
  output(): string;
  /** SIGTERM (by PID), then its exit code. */
  stop(): Promise<number | null>;
}

interface StepResult {
  step: string;
  seconds: number;
  ok: number;
  failures: number;
}

describe('uproxy sync --kubernetes', () => {
  let dir: string;
  let api: KubeApiStandIn;
  let kubeconfig: string;
  let tokenFile: string;
  let seed: BackendProcess;
  let proxy: RunningProxy;
  let controller: Controller;
  let load: Load;
  /** Every pod's backend process by pod name, as long as it runs. */
  const pods = new Map<string, BackendProcess>();
  const steps: StepResult[] = [];
  let podCount = 0;

  const startController = async (adminUrl: string, kubeconfigFile = kubeconfig): Promise<Controller> => {
    const healthPort = await freePort();
    const child = spawn(process.execPath, [
      BIN, 'sync', '--kubernetes', '--namespace', NAMESPACE, '--service', SERVICE,
      '--admin-url', adminUrl, '--admin-token-file', tokenFile,
      '--health-listen', `127.0.0.1:${healthPort}`, '--drain-timeout', '10',
    ], { env: { ...process.env, KUBECONFIG: kubeconfigFile }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return {
      child,
      healthUrl: `http://127.0.0.1:${healthPort}/healthz`,
      output: () => out,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        return exited;
      },
    };
  };

  const health = async (c: Controller): Promise<{ status: number; body: { watching: boolean; lastSync: string | null; backends: number; why?: string } }> => {
    const res = await fetch(c.healthUrl);
    return { status: res.status, body: (await res.json()) as { watching: boolean; lastSync: string | null; backends: number; why?: string } };
  };

  /** A new pod: its backend process and a slice of its own, ready or not. */
  const startPod = async (ready: boolean): Promise<string> => {
    const name = `api-6f7d9c-${String(++podCount).padStart(2, '0')}`;
    pods.set(name, await startBackendProcess(name));
    putPod(name, { ready });
    return name;
  };
  const putPod = (name: string, conditions: { ready: boolean; serving?: boolean; terminating?: boolean }): void => {
    api.putSlice({ name: `${SERVICE}-${name}`, service: SERVICE, port: pods.get(name)!.port, endpoints: [{ pod: name, ip: '127.0.0.1', ...conditions }] });
  };
  const killPod = async (name: string): Promise<void> => {
    await pods.get(name)!.kill();
    pods.delete(name);
  };

  const backends = async (): Promise<{ name: string; state: string; in_flight: number }[]> => (await proxy.stats()).backends;
  /** The proxy lists exactly `names`, all up. */
  const inStep = async (names: readonly string[]): Promise<boolean> => {
    const listed = await backends();
    return listed.length === names.length && listed.every((b) => names.includes(b.name) && b.state === 'up');
  };
  const waitInStep = (names: readonly string[], timeoutMs = 15_000): Promise<void> =>
    pollUntil(`the proxy to list exactly ${names.join(', ')}, all up`, () => inStep(names), timeoutMs);
  const waitTraffic = (names: readonly string[]): Promise<void> => {
    const before = Object.fromEntries(names.map((n) => [n, load.result.byBackend[n] ?? 0]));
    return pollUntil(`traffic on ${names.join(', ')}`, async () => names.every((n) => (load.result.byBackend[n] ?? 0) > before[n]! + 10));
  };
  /** Runs one scenario and records its requests; none may fail. */
  const step = async (name: string, body: () => Promise<void>): Promise<void> => {
    const started = Date.now();
    const ok = load.result.ok;
    const failures = load.result.failures.length;
    await body();
    const result = { step: name, seconds: (Date.now() - started) / 1000, ok: load.result.ok - ok, failures: load.result.failures.length - failures };
    steps.push(result);
    expect(load.result.failures.slice(failures)).toEqual([]);
    expect(result.ok).toBeGreaterThan(0);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uproxy-sync-'));
    api = await startKubeApi(NAMESPACE);
    kubeconfig = api.writeKubeconfig(dir);
    tokenFile = join(dir, 'admin-token');
    writeFileSync(tokenFile, `${ADMIN_TOKEN}\n`, { mode: 0o600 });
    seed = await startBackendProcess('seed');
    proxy = await startProxy({ backends: [{ name: 'seed', address: seed.address }] });
    load = steadyLoad(proxy.url, { clients: 4, maxMs: 85_000, maxRequests: 500_000 });
    await pollUntil('traffic on the initial backend', async () => (load.result.byBackend.seed ?? 0) > 20);
  });

  afterAll(async () => {
    await load?.stop();
    const code = await controller?.stop();
    await proxy?.stop().catch(() => undefined);
    await Promise.all([seed, ...pods.values()].filter(Boolean).map((p) => p.kill()));
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`uproxy sync scenarios (controller exit ${code}):\n${steps.map((s) => `  ${s.step}: ${s.seconds.toFixed(1)} s, ${s.ok} requests, ${s.failures} failed`).join('\n')}\n  in all: ${load?.result.ok} requests, ${load?.result.failures.length} failed`);
  });

  it('takes over a proxy that has one initial backend: 3 ready endpoints replace it', async () => {
    await step('start with 3 ready endpoints', async () => {
      const ready = [await startPod(true), await startPod(true), await startPod(true)];
      controller = await startController(proxy.adminUrl);
      await waitInStep(ready);
      await waitTraffic(ready);
      await seed.kill();
      await pollUntil('/healthz 200 with 3 backends', async () => {
        const h = await health(controller).catch(() => undefined);
        return h?.status === 200 && h.body.watching && h.body.backends === 3;
      });
    });
    expect(api.lists).toHaveLength(1);
    expect(controller.output()).toMatch(/event=backend_drained backend=seed .*reason=gone/);
    expect(controller.output()).toMatch(/event=backend_removed backend=seed/);
  });

  it('scales 3 -> 6 (pods start not ready, then become ready) -> 2 (terminating, then gone)', async () => {
    const first = [...pods.keys()];
    let added: string[] = [];
    await step('scale 3 -> 6', async () => {
      added = [await startPod(false), await startPod(false), await startPod(false)];
      // Not ready: not added. A pass runs on every event, so a few hundred ms would show it.
      await new Promise((r) => setTimeout(r, 600));
      expect(await inStep(first)).toBe(true);
      for (const name of added) putPod(name, { ready: true });
      await waitInStep([...first, ...added]);
      await waitTraffic(added);
    });
    await step('scale 6 -> 2', async () => {
      const leaving = [...first.slice(1), added[0]!];
      const staying = [first[0]!, ...added.slice(1)];
      for (const name of leaving) putPod(name, { ready: false, serving: true, terminating: true });
      await pollUntil('the terminating pods drained, nothing in flight on them', async () => {
        const listed = await backends();
        return leaving.every((n) => listed.some((b) => b.name === n && b.state === 'draining' && b.in_flight === 0));
      });
      // The pods exit once drained; then the EndpointSlice controller drops them: two slices
      // are deleted, two are left without endpoints.
      for (const name of leaving) await killPod(name);
      api.deleteSlice(`${SERVICE}-${leaving[0]}`);
      api.deleteSlice(`${SERVICE}-${leaving[1]}`);
      api.putSlice({ name: `${SERVICE}-${leaving[2]}`, service: SERVICE, port: 1, endpoints: [] });
      api.putSlice({ name: `${SERVICE}-${leaving[3]}`, service: SERVICE, port: 1, endpoints: [] });
      await waitInStep(staying);
      await waitTraffic(staying);
    });
  });

  it('a watch cut mid-event: it watches again from its last resourceVersion and applies what it missed', async () => {
    await step('watch cut mid-stream', async () => {
      const lists = api.lists.length;
      const watches = api.watches.length;
      // The last resourceVersion it saw is a bookmark's: the stream delivers it before the cut event.
      const bookmarked = api.bookmark();
      api.cutNextEvent();
      const cut = await startPod(true);
      const after = await startPod(true);
      await waitInStep([...pods.keys()]);
      await waitTraffic([cut, after]);
      expect(api.lists).toHaveLength(lists);
      expect(api.watches.slice(watches)[0]).toEqual({ resourceVersion: bookmarked, labelSelector: `kubernetes.io/service-name=${SERVICE}`, allowWatchBookmarks: true });
    });
    expect(controller.output()).toMatch(/event=watch_failed error="the watch connection was cut mid-stream"/);
  });

  for (const goneAs of ['event', 'status'] as const) {
    it(`410 Gone (${goneAs === 'event' ? 'an ERROR event with a Status of code 410' : 'HTTP 410'}): it lists again and reconciles the difference`, async () => {
      await step(`410 Gone as ${goneAs === 'event' ? 'an ERROR event' : 'HTTP 410'}`, async () => {
        const lists = api.lists.length;
        const [vanished, unready] = [...pods.keys()];
        // Changes the watch never delivers, then history compacted past its resourceVersion.
        api.pauseWatches(true);
        api.deleteSlice(`${SERVICE}-${vanished}`);
        putPod(unready!, { ready: false });
        const fresh = await startPod(true);
        api.goneAs = goneAs;
        api.compact();
        api.pauseWatches(false);
        api.dropWatches();
        const ready = [...pods.keys()].filter((n) => n !== vanished && n !== unready);
        await pollUntil('the proxy to match the relisted slices', async () => {
          const listed = await backends();
          return ready.every((n) => listed.some((b) => b.name === n && b.state === 'up'))
            && listed.some((b) => b.name === unready && b.state === 'draining')
            && !listed.some((b) => b.name === vanished);
        });
        expect(api.lists).toHaveLength(lists + 1);
        await waitTraffic([fresh]);
        // The pod that vanished ran until the proxy had removed it; the unready one comes back.
        await killPod(vanished!);
        putPod(unready!, { ready: true });
        await waitInStep([...pods.keys()]);
      });
      expect(controller.output()).toMatch(/event=watch_expired/);
    });
  }

  it('/healthz says 503 while the watch cannot be established, and 200 again once it is', async () => {
    await step('watch refused, then back', async () => {
      expect((await health(controller)).status).toBe(200);
      api.refuseWatches(true);
      api.dropWatches();
      await pollUntil('/healthz 503', async () => {
        const h = await health(controller);
        return h.status === 503 && !h.body.watching && /not watching EndpointSlices: the Kubernetes API answered 503/.test(h.body.why ?? '');
      });
      const more = await startPod(true);
      api.refuseWatches(false);
      await pollUntil('/healthz 200 again', async () => (await health(controller)).status === 200, 20_000);
      await waitInStep([...pods.keys()]);
      await waitTraffic([more]);
    });
  });

  it('/healthz says 503 and why while the Kubernetes API refuses its credentials', async () => {
    const refused = await startController(proxy.adminUrl, api.writeKubeconfig(dir, 'wrong-token'));
    try {
      await pollUntil('/healthz 503 for the credentials', async () => {
        const h = await health(refused).catch(() => undefined);
        return h?.status === 503 && /refused the credentials \(401\)/.test(h.body.why ?? '');
      });
      await pollUntil('a second attempt after the backoff', async () => (refused.output().match(/event=watch_failed/g) ?? []).length >= 2);
    } finally {
      expect(await refused.stop()).toBe(0);
    }
    expect(await inStep([...pods.keys()])).toBe(true);
  });

  it('/healthz says 503 while the admin API cannot be reached, and logs no secret', async () => {
    const unreachable = await startController(`http://127.0.0.1:${await freePort()}`);
    try {
      await pollUntil('/healthz 503 for the admin API', async () => {
        const h = await health(unreachable).catch(() => undefined);
        return h?.status === 503 && h.body.watching && /the last sync with the proxy failed: cannot reach the proxy's admin API/.test(h.body.why ?? '');
      });
      expect(unreachable.output()).toMatch(/event=sync_failed .*retry_in_ms=\d+/);
    } finally {
      expect(await unreachable.stop()).toBe(0);
    }
    const code = await controller.stop();
    expect(code).toBe(0);
    expect(controller.output()).toMatch(/event=sync_stopped/);
    for (const out of [controller.output(), unreachable.output()]) expect(out).not.toContain(ADMIN_TOKEN);
    expect(load.result.failures).toEqual([]);
  });
});
