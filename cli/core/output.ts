import { realpathSync } from 'node:fs';
import type { HttpsMode } from '../config/schema.js';
import { join, relative } from 'node:path';
import { findOnPath } from '../runtimes/processes.js';
import type { MachineStatus } from '../runtimes/runtime.js';
import type { CertStatus, RenewResult } from './cert.js';

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
export function curlLine(proxy: { listen: string; tls?: HttpsMode; serverName?: string }, projectDir = process.cwd()): string {
  const here = relative(process.cwd(), join(projectDir, '.uproxy')) || '.uproxy';
  const header = `-H "X-Auth-Token: $(cat ${here}/client-token)"`;
  if (proxy.tls === undefined) return `curl ${header} http://${proxy.listen}/`;
  const colon = proxy.listen.lastIndexOf(':');
  const address = proxy.listen.slice(0, colon);
  if (proxy.serverName !== undefined) {
    const port = proxy.listen.slice(colon + 1);
    return `curl ${header} https://${proxy.serverName}${port === '443' ? '' : `:${port}`}/`;
  }
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

/** `Certificate: expires 2027-01-02 08:00 UTC (in 30 days), from R3`, from its Unix-seconds expiry and issuer. */
export function certificateLine(notAfter: number, now = Date.now(), issuer?: string): string {
  return `Certificate: expires ${expiryText(notAfter * 1000, now)}${issuer ? `, from ${issuer}` : ''}`;
}

/** `2027-01-02 08:00 UTC (in 30 days)`. */
function expiryText(notAfterMs: number, now: number): string {
  const when = new Date(notAfterMs).toISOString().slice(0, 16).replace('T', ' ');
  const days = Math.floor((notAfterMs - now) / 86_400_000);
  const left = notAfterMs <= now ? 'expired' : days === 0 ? 'today' : `in ${days} ${days === 1 ? 'day' : 'days'}`;
  return `${when} UTC (${left})`;
}

/** `uproxy cert status` as text. */
export function certStatusText(status: CertStatus, now = Date.now()): string {
  if (status.mode === 'off') return 'proxy.tls.mode is "off": the proxy serves plain HTTP, with no certificate.\n';
  const lines = [`Mode: ${status.mode}`];
  const file = status.file?.certificate;
  if (!status.file) lines.push('Certificate: none yet (`uproxy up` makes one)');
  else if (!file) lines.push(`Certificate: ${status.file.path} holds none that can be read`);
  else {
    lines.push(`Certificate (${relative(process.cwd(), status.file.path) || status.file.path}):`);
    lines.push(`  issuer   ${file.issuer}`, `  names    ${file.names.join(', ')}`, `  serial   ${file.serial}`, `  expires  ${expiryText(Date.parse(file.notAfter), now)}`);
  }
  if (status.served) {
    const same = file !== undefined && file !== null && status.served.serial === file.serial;
    lines.push(same ? 'The running proxy serves it.' : `The running proxy serves another: serial ${status.served.serial ?? '?'} from ${status.served.issuer ?? '?'}, expires ${status.served.notAfter} (\`uproxy up\` hands it this one)`);
  } else if (status.servedProblem) lines.push(`The running proxy did not answer: ${status.servedProblem}`);
  else lines.push('No fleet is running.');
  const { acme } = status;
  if (acme) {
    lines.push(`ACME: ${acme.domains.join(', ')} from ${acme.directoryUrl} (${acme.challenge})`);
    lines.push(acme.due === null ? '  renewal  not due' : `  renewal  due: ${acme.due}`);
    if (acme.failure) {
      lines.push(`  last failure ${acme.failure.at} (${acme.failure.count} in a row): ${acme.failure.message}`);
      lines.push(`  automatic attempts wait until ${acme.failure.backoffUntil}; \`uproxy cert renew\` asks now`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** What `uproxy cert renew` did, or '' for a scheduled run that had nothing to do. */
export function renewText(result: RenewResult, scheduled: boolean): string {
  if (result.mode === 'local-ca') {
    if (result.renewed === null) return scheduled ? '' : 'The certificate from the project CA is not due: nothing to renew.\n';
    return `New certificate from the project CA (${result.renewed}); ${result.replaced ? 'the running proxy serves it (no restart)' : 'the proxy already serves it'}.\n`;
  }
  const { outcome } = result;
  if (outcome.kind === 'current') return scheduled ? '' : 'The certificate is not due for renewal (`uproxy cert status` says when; --force asks the CA anyway).\n';
  if (outcome.kind === 'backing-off') return scheduled ? '' : `Not asking the CA before ${new Date(outcome.until).toISOString()}: ${outcome.failure.message}\n`;
  const served = outcome.replaced ? 'the running proxy serves it now (no restart)' : 'the running proxy already served it';
  return `New certificate from ${outcome.issuer} (${outcome.reason}): serial ${outcome.serial}, valid until ${new Date(outcome.notAfter).toISOString()}; ${served}.\n`;
}
