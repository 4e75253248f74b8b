import { realpathSync } from 'node:fs';
import { relative } from 'node:path';
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
    ['NAME', 'ROLE', 'ADDRESS', 'PID', 'STATE'],
    machines.map((m) => [m.name, m.role, m.address, m.pid === null ? '-' : String(m.pid), m.health ? `${m.state}, ${m.health}` : m.state]),
  );
}

/** The token is read from its file by the shell, so it never shows in output or logs. */
export function curlLine(listen: string, tokenFile = '.uproxy/client-token'): string {
  return `curl -H "X-Auth-Token: $(cat ${tokenFile})" http://${listen}/`;
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
