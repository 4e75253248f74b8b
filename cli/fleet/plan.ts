import { join } from 'node:path';
import type { ClientToken, RuntimeName, UproxyConfig } from '../config/schema.js';
import { tlsPaths } from '../files.js';
import { commandLine, renderOptions, type CommandLine } from './argv.js';

/**
 * config -> fleet plan, as plain data: which machines exist, what they are called, which app
 * each runs and with which arguments. No file, process or network is touched here, so every
 * decision is testable directly. Where a machine runs (ports, addresses) is the runtime's
 * part; the helpers at the bottom render the proxy's and backends' command lines from it.
 */

export type Role = 'proxy' | 'backend';

export interface AppPlan {
  /** Absolute directory of the app's sources (where `make` runs). */
  dir: string;
  /** Absolute path of the built binary. */
  binary: string;
}

export interface MachinePlan {
  name: string;
  role: Role;
  app: AppPlan;
}

export interface FleetPlan {
  fleet: string;
  runtime: RuntimeName;
  projectDir: string;
  proxy: MachinePlan;
  backends: MachinePlan[];
  config: UproxyConfig;
  /**
   * The PEM file (chain + key) the proxy serves HTTPS with, which `up` writes (`.uproxy/tls/proxy.pem`,
   * for local-ca and files alike); null when proxy.tls.mode is off.
   */
  proxyCertFile: string | null;
}

export interface PlanOptions {
  /** `up --backends N`; the config's `backends.count` otherwise. */
  backends?: number;
  runtime?: RuntimeName;
}

export const PROXY_NAME = 'proxy';

export function backendName(index: number): string {
  return `backend-${index}`;
}

/** A machine's name outside uproxy (a QEMU guest, a kraft machine): `<fleet>-<machine>`, so two fleets never collide. */
export function instanceName(fleet: string, machine: string): string {
  return `${fleet}-${machine}`;
}

/**
 * Backends are always `backend-1` .. `backend-N`, so scaling from 5 to 2 keeps backend-1 and
 * backend-2 untouched and removes the highest ones.
 */
export function planFleet(config: UproxyConfig, projectDir: string, options: PlanOptions = {}): FleetPlan {
  const count = options.backends ?? config.backends.count;
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new RangeError(`the number of backends must be an integer from 1 to 64, got ${count}`);
  }
  const proxyApp = app(projectDir, config.proxy.app, config.proxy.binary);
  const backendApp = app(projectDir, config.backends.app, config.backends.binary);
  return {
    fleet: config.name,
    runtime: options.runtime ?? config.runtime,
    projectDir,
    proxy: { name: PROXY_NAME, role: 'proxy', app: proxyApp },
    backends: Array.from({ length: count }, (_, i) => ({ name: backendName(i + 1), role: 'backend' as const, app: backendApp })),
    config,
    proxyCertFile: config.proxy.tls.mode === 'off' ? null : tlsPaths(projectDir).proxy,
  };
}

/**
 * Why `up` must not start this fleet as planned, or null: plain HTTP published beyond this
 * host would carry every client's token in clear text, so it takes an explicit opt-in.
 */
export function plainHttpProblem(plan: FleetPlan): string | null {
  const { publish, tls } = plan.config.proxy;
  if (tls.mode !== 'off' || tls.allowPlainHttp === true || publish === undefined || publish.startsWith('127.')) return null;
  return (
    `proxy.publish "${publish}" would serve plain HTTP beyond this host, where anyone on the way can read the X-Auth-Token: ` +
    'set "tls": {"mode": "local-ca"} (or "files") in proxy of uproxy.json, or, if clear text is what you mean, "tls": {"mode": "off", "allowPlainHttp": true}'
  );
}

/**
 * Where the proxy's plain HTTP listener publishes, if anywhere: proxy.publishHttp, or port 80
 * of proxy.publish's address when an ACME CA validates with http-01 (it only ever fetches
 * http://DOMAIN/ on port 80).
 */
export function plainHttpListener(config: UproxyConfig): string | undefined {
  const { publish, publishHttp, tls } = config.proxy;
  if (publishHttp !== undefined) return publishHttp;
  if (tls.mode !== 'acme' || tls.acme?.challenge !== 'http-01' || publish === undefined) return undefined;
  return `${publish.slice(0, publish.lastIndexOf(':'))}:80`;
}

/**
 * Why this runtime cannot serve what proxy.publishHttp or tls mode acme ask, or null: the VM
 * runtimes forward only proxy.publish to the proxy guest so far, so neither an ACME CA nor a
 * browser could reach a plain HTTP listener there.
 */
export function publishHttpProblem(plan: FleetPlan): string | null {
  const { publishHttp, tls } = plan.config.proxy;
  if (plan.runtime === 'host' || (publishHttp === undefined && tls.mode !== 'acme')) return null;
  const what = tls.mode === 'acme' ? 'proxy.tls.mode "acme"' : 'proxy.publishHttp';
  return `${what} runs on the host runtime only for now (the ${plan.runtime} runtime forwards only proxy.publish to the proxy guest): ` +
    `run it with --runtime host, or use mode "files" with a certificate you obtain yourself`;
}

/** `make -C dir [-f makefile] [target]`: how every app is built (the Makefile's default target when none is named). */
export function makeCommand(dir: string, options: { target?: string; makefile?: string } = {}): CommandLine {
  return commandLine('make', renderOptions({ C: dir, f: options.makefile }, '-'), options.target ? [options.target] : []);
}

/** One `make` per distinct app of the fleet (proxy, backend), for `up --dry-run`. */
export function appBuildCommands(plan: FleetPlan, target?: string): CommandLine[] {
  const dirs = [...new Set([plan.proxy.app.dir, ...plan.backends.map((b) => b.app.dir)])];
  return dirs.map((dir) => makeCommand(dir, { target }));
}

function app(projectDir: string, dir: string, binary: string): AppPlan {
  const absoluteDir = join(projectDir, dir);
  return { dir: absoluteDir, binary: join(absoluteDir, binary) };
}

export interface BackendEndpoint {
  name: string;
  /** `host:port` the proxy connects to. */
  address: string;
}

export interface ProxyListeners {
  /** `host:port` for clients. */
  listen: string;
  /** `host:port` for the admin API. */
  admin: string;
  /** CIDR of the fleet's own network: backends added through the admin API must be in it. */
  backendNetwork: string;
  /** `host:port` of the plain HTTP listener (ACME http-01, redirects to https://), if any. */
  plainHttp?: string;
}

/**
 * The proxy's options (proxy/README.md). Only SHA-256 digests of tokens appear: a plaintext
 * token never goes on a command line, where `ps` would show it; nor does a private key: the
 * proxy reads it from `certFile` (mode 0600), and a renewed one comes through the admin API.
 */
export function proxyArgs(config: UproxyConfig, listeners: ProxyListeners, backends: readonly BackendEndpoint[], certFile?: string | null): string[] {
  const { proxy } = config;
  const health = config.backends.health;
  return renderOptions(
    {
      listen: listeners.listen,
      admin: listeners.admin,
      'admin-token-sha256': proxy.adminTokenSha256,
      backend: backends.map((b) => `${b.name}=${b.address}`),
      token: proxy.tokens.map(tokenArg),
      algorithm: proxy.algorithm,
      'health-path': health.path,
      'health-interval-ms': health.intervalMs,
      'health-timeout-ms': health.timeoutMs,
      'health-fall': health.fall,
      'health-rise': health.rise,
      'connect-timeout-ms': proxy.timeouts.connectMs,
      'response-timeout-ms': proxy.timeouts.responseMs,
      'header-timeout-ms': proxy.timeouts.headerMs,
      'idle-timeout-ms': proxy.timeouts.idleMs,
      'shutdown-timeout-ms': proxy.timeouts.shutdownMs,
      'max-connections': proxy.maxConnections,
      'backend-max-connections': config.backends.maxConnections,
      'backend-network': listeners.backendNetwork,
      'tls-cert': certFile ?? undefined,
      'redirect-listen': listeners.plainHttp,
      // To stdout, which every runtime already keeps as the proxy's log, VM guests included.
      'access-log': proxy.accessLog ? '-' : undefined,
    },
    '--',
  );
}

/** `--token NAME:SHA256[:EXPIRES]`, the expiry in Unix seconds as the proxy takes it. */
export function tokenArg(token: ClientToken): string {
  return token.expires === undefined ? `${token.name}:${token.sha256}` : `${token.name}:${token.sha256}:${expirySeconds(token.expires)}`;
}

/** An RFC 3339 expiry as the proxy's Unix seconds: the first whole second at or after it. */
export function expirySeconds(expires: string): number {
  return Math.ceil(Date.parse(expires) / 1000);
}

/** The backend app's contract: `--listen ADDR:PORT --name NAME`. */
export function backendArgs(name: string, listen: string): string[] {
  return renderOptions({ listen, name }, '--');
}

/** Ports of a fleet on the host runtime; backends by name. */
export interface HostPorts {
  proxy: number;
  admin: number;
  backends: Readonly<Record<string, number>>;
}

export interface HostProcessPlan {
  name: string;
  role: Role;
  /** Where it serves, `127.0.0.1:port`. */
  address: string;
  command: CommandLine;
  /** Where it runs: its app directory. */
  cwd: string;
  /** Environment variables added to uproxy's for it (backends.env). */
  env: Record<string, string>;
  /** Its stdout and stderr. */
  log: string;
}

export const LOOPBACK = '127.0.0.1';

/**
 * A backend's command line: backends.command with its placeholders filled in, or the default
 * backend's contract (`--listen ADDR:PORT --name NAME`).
 */
export function backendCommand(config: UproxyConfig, binary: string, name: string, host: string, port: number): { command: CommandLine; env: Record<string, string> } {
  const { command, env = {} } = config.backends;
  if (command === undefined) return { command: commandLine(binary, backendArgs(name, `${host}:${port}`)), env: {} };
  const values: Record<string, string> = { host, port: String(port), address: `${host}:${port}`, name };
  const fill = (text: string): string => text.replace(/\{(host|port|address|name)\}/g, (_, key: string) => values[key]!);
  const [file, ...args] = command.map(fill);
  return { command: commandLine(file!, args), env: Object.fromEntries(Object.entries(env).map(([key, value]) => [key, fill(value)])) };
}

/** Why this runtime cannot run the backends as configured, or null: your own command and environment are for host processes. */
export function ownBackendProblem(plan: FleetPlan): string | null {
  const { command, env } = plan.config.backends;
  if (plan.runtime === 'host' || (command === undefined && env === undefined)) return null;
  return `backends.${command === undefined ? 'env' : 'command'} in uproxy.json runs your app as a host process, but the ${plan.runtime} runtime boots a static binary in each VM guest ` +
    '(backends.app\'s `make static`): run it with --runtime host, or remove backends.command and backends.env';
}

/** The host runtime's processes: everything on 127.0.0.1 (the proxy on proxy.publish when set), backends first, the proxy last. */
export function planHostProcesses(plan: FleetPlan, ports: HostPorts, logDir: string): HostProcessPlan[] {
  const backends = plan.backends.map((machine) => {
    const port = ports.backends[machine.name];
    if (port === undefined) throw new RangeError(`no port was assigned to ${machine.name}`);
    return {
      name: machine.name,
      role: machine.role,
      address: `${LOOPBACK}:${port}`,
      ...backendCommand(plan.config, machine.app.binary, machine.name, LOOPBACK, port),
      cwd: machine.app.dir,
      log: join(logDir, `${machine.name}.log`),
    };
  });
  // proxy.publish: the proxy itself listens where clients from other machines reach it.
  const listen = plan.config.proxy.publish ?? `${LOOPBACK}:${ports.proxy}`;
  const listeners = { listen, admin: `${LOOPBACK}:${ports.admin}`, backendNetwork: `${LOOPBACK}/32`, plainHttp: plainHttpListener(plan.config) };
  const proxy = {
    name: plan.proxy.name,
    role: plan.proxy.role,
    address: listeners.listen,
    command: commandLine(plan.proxy.app.binary, proxyArgs(plan.config, listeners, backends, plan.proxyCertFile)),
    cwd: plan.proxy.app.dir,
    env: {},
    log: join(logDir, `${plan.proxy.name}.log`),
  };
  return [...backends, proxy];
}
