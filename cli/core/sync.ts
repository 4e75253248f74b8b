/**
 * `uproxy sync --kubernetes`: keeps a running proxy's backends in step with a Service's ready
 * endpoints, for as long as it runs (in the cluster, next to the proxy, or outside with a
 * kubeconfig). Checks its options, then runs the EndpointSlice watch, the sync loop and the
 * optional /healthz listener until `signal` aborts. It prints nothing itself: its log lines go
 * to `write`.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { UserError } from '../errors.js';
import { SyncController } from '../kubernetes/sync/controller.js';
import { healthAnswer, serveHealth } from '../kubernetes/sync/health.js';
import { loadKubeconfig } from '../kubernetes/sync/kubeconfig.js';
import { logTo } from '../kubernetes/sync/log.js';
import { EndpointSliceWatch } from '../kubernetes/sync/slice-watch.js';
import type { AdminEndpoint } from '../stats/client.js';

export interface KubernetesSyncOptions {
  namespace: string;
  service: string;
  /** Which of the Service's ports to route to, when it has several. */
  portName?: string;
  /** The proxy's admin listener, `http://HOST:PORT`. */
  adminUrl: string;
  adminTokenFile: string;
  /** `HOST:PORT` for GET /healthz; none: no listener. */
  healthListen?: string;
  drainTimeoutMs: number;
}

export interface SyncIo {
  /** Takes each log line, without its newline. */
  write(line: string): void;
  /** Ends the sync (SIGTERM). */
  signal: AbortSignal;
}

export async function syncFromKubernetes(options: KubernetesSyncOptions, io: SyncIo): Promise<void> {
  const target = { namespace: dnsLabel('--namespace', options.namespace), service: dnsLabel('--service', options.service) };
  const admin: AdminEndpoint = { url: adminUrl(options.adminUrl), token: readAdminToken(options.adminTokenFile) };
  const listen = options.healthListen === undefined ? undefined : hostPort('--health-listen', options.healthListen);
  const { kc, source, server: apiServer } = loadKubeconfig();
  const log = logTo(io.write);

  const watch = new EndpointSliceWatch(kc, target, log, () => controller.wake());
  const controller = new SyncController(watch, { admin, adminTokenFile: options.adminTokenFile, portName: options.portName, drainTimeoutMs: options.drainTimeoutMs, log });
  const health = (): ReturnType<typeof healthAnswer> =>
    healthAnswer({ watching: watch.watching, watchProblem: watch.problem, ...controller.health }, Date.now());
  let healthServer: Server | undefined;
  if (listen !== undefined) {
    try {
      healthServer = await serveHealth(listen, health);
    } catch (error) {
      throw new UserError(`--health-listen ${options.healthListen}: cannot listen there: ${(error as Error).message}`);
    }
  }

  log('info', 'sync_started', {
    namespace: target.namespace,
    service: target.service,
    port_name: options.portName,
    admin_url: admin.url,
    kubeconfig: source,
    api_server: apiServer,
    drain_timeout_s: options.drainTimeoutMs / 1000,
    health_listen: options.healthListen,
  });
  watch.start();
  try {
    await controller.run(io.signal);
  } finally {
    await watch.stop();
    healthServer?.closeAllConnections();
    healthServer?.close();
  }
  log('info', 'sync_stopped', { namespace: target.namespace, service: target.service });
}

/** Namespaces and Service names are DNS labels (RFC 1123). */
function dnsLabel(option: string, value: string): string {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value)) {
    throw new UserError(`${option} "${value}": expected a Kubernetes name: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit`);
  }
  return value;
}

/** The admin client speaks plain HTTP (node:http), as the proxy's admin listener does. */
function adminUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UserError(`--admin-url "${value}": expected http://HOST:PORT, the proxy's admin listener (e.g. http://uproxy-admin:9090)`);
  }
  if (url.protocol !== 'http:' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '') {
    throw new UserError(`--admin-url "${value}": expected http://HOST:PORT with no path, user or query: the proxy's admin listener speaks plain HTTP (e.g. http://uproxy-admin:9090)`);
  }
  return url.origin;
}

function readAdminToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new UserError(`--admin-token-file ${file}: cannot read it: ${(error as Error).message}`);
  }
  if (token === '') throw new UserError(`--admin-token-file ${file} is empty: it must hold the proxy's admin token`);
  return token;
}

function hostPort(option: string, value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) throw new UserError(`${option} "${value}": expected ADDRESS:PORT, e.g. 0.0.0.0:8090 or [::]:8090`);
  return { host: match[1] ?? match[2]!, port };
}
