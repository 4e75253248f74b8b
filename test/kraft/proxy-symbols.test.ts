import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The proxy must stay inside what Unikraft's musl + lwip + posix-poll provide. proxy/README.md
 * lists the system calls and C library functions it may use; this compiles the proxy and
 * llhttp with musl-gcc and compares every undefined symbol of the objects, less what OpenSSL
 * (compiled into the kernel with them) provides, with that list.
 * A new libc call in proxy/src fails here until it is checked against Unikraft and listed.
 */

const PROXY = fileURLToPath(new URL('../../proxy', import.meta.url));
const LLHTTP = { src: '/usr/share/llhttp', include: '/usr/share/include/llhttp' };
/** Emitted by the toolchain, not called by our code. */
const TOOLCHAIN = new Set(['_GLOBAL_OFFSET_TABLE_']);

/** Debian's OpenSSL (libssl-dev), which the Unikraft build compiles from the same release. */
const OPENSSL_LIBS = ['/usr/lib/x86_64-linux-gnu/libssl.so.3', '/usr/lib/x86_64-linux-gnu/libcrypto.so.3'];

const work = mkdtempSync(join(tmpdir(), 'uproxy-symbols-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * OpenSSL's headers alone, for musl-gcc: its own and Debian's per-architecture ones merged in
 * one directory, since pointing musl-gcc at /usr/include would hand it glibc's headers too.
 */
const openssl = join(work, 'openssl-include');
mkdirSync(join(openssl, 'openssl'), { recursive: true });
for (const dir of ['/usr/include/openssl', '/usr/include/x86_64-linux-gnu/openssl']) {
  for (const header of readdirSync(dir)) symlinkSync(join(dir, header), join(openssl, 'openssl', header));
}

/** Every `lowercase_identifier` in backticks from "System calls:" to the end of the "C library" paragraph. */
function documentedFunctions(): Set<string> {
  const readme = readFileSync(join(PROXY, 'README.md'), 'utf8');
  const start = readme.indexOf('System calls:');
  expect(start, 'proxy/README.md has no "System calls:" list').toBeGreaterThanOrEqual(0);
  const library = readme.indexOf('C library', start);
  expect(library, 'proxy/README.md has no "C library" list after the system calls').toBeGreaterThan(start);
  const end = readme.indexOf('\n\n', library);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return new Set([...section.matchAll(/`([a-z_][a-z0-9_]*)`/g)].map((m) => m[1]!));
}

function nm(args: string[], objects: string[]): string[] {
  return execFileSync('nm', [...args, ...objects], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 2)
    .map((fields) => fields.at(-1)!);
}

describe('proxy C code under musl', () => {
  it('calls only the system calls and C functions proxy/README.md lists', () => {
    const sources = [
      ...readdirSync(join(PROXY, 'src')).filter((f) => f.endsWith('.c')).map((f) => join(PROXY, 'src', f)),
      ...['api.c', 'http.c', 'llhttp.c'].map((f) => join(LLHTTP.src, f)),
    ];
    const objects = sources.map((source) => {
      const object = join(work, `${source.startsWith(LLHTTP.src) ? 'llhttp-' : ''}${basename(source, '.c')}.o`);
      execFileSync('musl-gcc', ['-std=c11', '-D_GNU_SOURCE', '-DUPROXY_VERSION="test"', '-O2', '-static', `-I${LLHTTP.include}`, `-I${join(PROXY, 'src')}`, `-I${openssl}`, '-c', source, '-o', object]);
      return object;
    });
    const defined = new Set(nm(['--defined-only'], objects));
    // OpenSSL is compiled into the kernel with the proxy (openssl.uk): what it provides is not asked of Unikraft.
    const fromOpenssl = new Set(nm(['-D', '--defined-only'], OPENSSL_LIBS).map((symbol) => symbol.replace(/@.*$/, '')));
    const used = new Set(nm(['--undefined-only'], objects).filter((s) => !defined.has(s) && !TOOLCHAIN.has(s) && !fromOpenssl.has(s)));
    const documented = documentedFunctions();

    const undocumented = [...used].filter((s) => !documented.has(s)).sort();
    expect(undocumented, 'used by the proxy but not listed in proxy/README.md (check Unikraft provides them, then list them)').toEqual([]);
    // The list is the contract for the event loop Unikraft must provide.
    for (const call of ['epoll_create1', 'epoll_ctl', 'epoll_wait', 'getrandom', 'clock_gettime', 'fcntl']) expect(used).toContain(call);
    expect(used).not.toContain('signalfd');
    expect(used).not.toContain('pthread_create');
  });
});
