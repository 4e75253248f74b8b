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
