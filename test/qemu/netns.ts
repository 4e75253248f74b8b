import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * Network namespaces for the qemu tests: every bridge, tap, VM address and nftables rule these
 * tests make lives in a namespace created here and deleted afterwards, never on the host.
 * Creating namespaces, bridges and taps needs root (CI runs as root).
 */

export function whyCannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: it creates network namespaces, bridges and taps';
  if (!existsSync('/usr/bin/qemu-system-x86_64')) return 'needs qemu-system-x86 (installed by .ci/run)';
  return undefined;
}

export function addNamespace(name: string): void {
  execFileSync('ip', ['netns', 'add', name]);
  inNamespace(name, 'ip', 'link', 'set', 'lo', 'up');
}

export function deleteNamespace(name: string): void {
  execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
}

export function inNamespace(name: string, file: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', name, file, ...args], { encoding: 'utf8' });
}

/** The namespace's own wrapper: what every command the test runs inside it is prefixed with. */
export function netnsWrap(name: string): string[] {
  return ['ip', 'netns', 'exec', name];
}
