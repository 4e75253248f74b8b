/** Whether this process may create bridges, taps and nftables rules. */
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.js';

const CAP_NET_ADMIN = 12n;

export function hasNetAdmin(statusText: string = readFileSync('/proc/self/status', 'utf8')): boolean {
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(statusText);
  return match !== null && ((BigInt(`0x${match[1]!}`) >> CAP_NET_ADMIN) & 1n) === 1n;
}

export const NET_ADMIN_FIX =
  'The qemu runtime creates a bridge, one tap per machine and nftables rules, which needs CAP_NET_ADMIN. ' +
  'Run it as root (e.g. `sudo uproxy up --runtime qemu`), or use `--runtime host`, which needs no privileges.';

export function requireNetAdmin(): void {
  if (!hasNetAdmin()) throw new UserError(`missing CAP_NET_ADMIN. ${NET_ADMIN_FIX}`);
}
