import { realpathSync } from 'node:fs';
import { join, relative } from 'node:path';
import { findOnPath } from '../runtimes/processes.js';
import type { MachineStatus } from '../runtimes/runtime.js';

/** Plain fixed-width table: header row, then one row per record. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export interface MachineRow extends MachineStatus {
  /** The proxy's view of a backend (up/down/draining), when the admin API answered. */
  health?: string;
}

export function machineTable(machines: readonly MachineRow[]): string {
  return table(
    ['NAME', 'ROLE', 'ADDRESS', 'PID', 'RESTARTS', 'STATE'],
    machines.map((m) => [m.name, m.role, m.address, m.pid === null ? '-' : String(m.pid), m.restarts === undefined ? '-' : String(m.restarts), m.health ? `${m.state}, ${m.health}` : m.state]),
  );
}

/**
 * The token is read from its file by the shell, so it never shows in output or logs. Over
 * HTTPS a proxy on loopback (or on every address) is named `localhost` and any other by its
 * address, which the certificate covers, and a local-ca fleet's curl trusts the project CA.
 * Files are named from the current directory, which may be below the project (`projectDir`).
 */
export function curlLine(proxy: { listen: string; tls?: 'local-ca' | 'files' }, projectDir = process.cwd()): string {
  const here = relative(process.cwd(), join(projectDir, '.uproxy')) || '.uproxy';
  const header = `-H "X-Auth-Token: $(cat ${here}/client-token)"`;
  if (proxy.tls === undefined) return `curl ${header} http://${proxy.listen}/`;
  const colon = proxy.listen.lastIndexOf(':');
  const address = proxy.listen.slice(0, colon);
  const host = address === '127.0.0.1' || address === '0.0.0.0' ? 'localhost' : address;
  const trust = proxy.tls === 'local-ca' ? `--cacert ${here}/tls/ca.pem ` : '';
  return `curl ${trust}${header} https://${host}:${proxy.listen.slice(colon + 1)}/`;
}

/**
 * How to run uproxy from `dir` in a hint: `uproxy` when it is on PATH (`npm link`), else the
 * path this process was started by, relative to `dir` when that is shorter (e.g. `../bin/uproxy`).
 */
export function uproxyCommand(dir: string, script = process.argv[1]): string {
  if (findOnPath('uproxy') !== null || script === undefined) return 'uproxy';
  const absolute = realpathSync(script);
  const path = relative(dir, absolute);
  const fromDir = path.startsWith('.') ? path : `./${path}`;
  return fromDir.length < absolute.length ? fromDir : absolute;
}

/** `Certificate: expires 2027-01-02 08:00 UTC (in 30 days)`, from its Unix-seconds expiry. */
export function certificateLine(notAfter: number, now = Date.now()): string {
  const when = new Date(notAfter * 1000).toISOString().slice(0, 16).replace('T', ' ');
  const days = Math.floor((notAfter * 1000 - now) / 86_400_000);
  const left = days < 0 ? 'expired' : days === 0 ? 'today' : `in ${days} ${days === 1 ? 'day' : 'days'}`;
  return `Certificate: expires ${when} UTC (${left})`;
}
