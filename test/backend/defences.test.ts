import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../proxy/support/proxy.js';
import { pollUntil } from '../proxy/support/load.js';

// How the default backend app (templates/backend) defends itself when a peer vanishes or
// never sends (issue 14): idle and request-head timeouts, TCP keepalive, a transient poll()
// failure waited out instead of exiting, and a full client table that makes new connections
// wait instead of dropping them. Host build, real processes, 127.0.0.1 only.
// UPROXY_BACKEND_BIN runs them against another build (UPROXY_BACKEND_SMALL_BIN for the one
// built with -DMAX_CLIENTS=2): that is how each was seen to fail against the backend before.
const TEMPLATE = fileURLToPath(new URL('../../templates/backend', import.meta.url));

/** A poll() and accept() that fail while a file exists: failures injected from outside. */
const SHIM = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void)
{
    const char *path = getenv("BACKEND_FAIL_POLL_WHILE");
    return path != NULL && access(path, F_OK) == 0;
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    static int (*real)(struct pollfd *, nfds_t, int);
    if (real == NULL)
        real = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
    if (failing()) {
        errno = ENOMEM;
        return -1;
    }
    return real(fds, n, timeout);
}
`;

interface Backend {
  port: number;
  child: ChildProcess;
  log: () => string;
}

/** One raw connection that records what it got and when the server closed it. */
class Conn {
  got = '';
  closedAt: number | undefined;
  readonly openedAt = Date.now();
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d) => (this.got += d.toString('latin1')));
    sock.on('close', () => (this.closedAt ??= Date.now()));
    sock.on('end', () => (this.closedAt ??= Date.now()));
    sock.on('error', () => undefined);
  }
  static open(port: number): Promise<Conn> {
    return new Promise((ok, fail) => {
      const sock = net.connect(port, '127.0.0.1', () => ok(new Conn(sock)));
      sock.once('error', fail);
    });
  }
  send(data: string): void {
    this.sock.write(data, 'latin1');
  }
  async closedWithin(ms: number): Promise<boolean> {
    await pollUntil('the backend to close the connection', async () => this.closedAt !== undefined, ms).catch(() => undefined);
    return this.closedAt !== undefined;
  }
}

describe('backend template: defences', () => {
  let build: string;
  let binary: string;
  let smallBinary: string;
  let shim: string;
  const children: ChildProcess[] = [];
  const conns: Conn[] = [];

  beforeAll(() => {
    build = mkdtempSync(join(tmpdir(), 'uproxy-backend-defences-'));
    if (process.env.UPROXY_BACKEND_BIN) {
      binary = resolve(process.env.UPROXY_BACKEND_BIN);
    } else {
      execFileSync('make', ['-C', TEMPLATE, `BUILD=${join(build, 'default')}`], { stdio: 'ignore' });
      binary = join(build, 'default', 'backend');
    }
    if (process.env.UPROXY_BACKEND_SMALL_BIN) {
      smallBinary = resolve(process.env.UPROXY_BACKEND_SMALL_BIN);
    } else {
      // The table size is a build-time constant (under Unikraft: LWIP_NUM_TCPCON - 1).
      execFileSync('make', ['-C', TEMPLATE, `BUILD=${join(build, 'small')}`, 'CFLAGS=-O2 -g -DMAX_CLIENTS=2'], { stdio: 'ignore' });
      smallBinary = join(build, 'small', 'backend');
    }
    writeFileSync(join(build, 'shim.c'), SHIM);
    shim = join(build, 'shim.so');
    execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, join(build, 'shim.c'), '-ldl']);
  });
  afterEach(() => {
    for (const c of conns.splice(0)) c.sock.destroy();
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(build, { recursive: true, force: true });
  });

  async function start(args: string[], opts: { bin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Backend> {
    const port = await freePort();
    const child = spawn(opts.bin ?? binary, ['--listen', `127.0.0.1:${port}`, '--name', 'd', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...opts.env },
    });
    children.push(child);
    let log = '';
    child.stderr!.on('data', (d) => (log += d));
    await pollUntil('the backend to listen', async () => log.includes('listening') || child.exitCode !== null);
    expect(child.exitCode, `the backend exited: ${log}`).toBeNull();
    return { port, child, log: () => log };
  }

  async function open(port: number): Promise<Conn> {
    const c = await Conn.open(port);
    conns.push(c);
    return c;
  }

  async function health(port: number): Promise<boolean> {
    try {
      const res = await request(`http://127.0.0.1:${port}/health`, { headersTimeout: 2_000, bodyTimeout: 2_000 });
      return res.statusCode === 200 && (await res.body.text()) === 'ok\n';
    } catch {
      return false;
    }
  }

  it('closes a connection that sends nothing after --idle-timeout-ms, not before', async () => {
    const b = await start(['--idle-timeout-ms', '600']);
    const silent = await open(b.port);
    await new Promise((r) => setTimeout(r, 300));
    expect(silent.closedAt).toBeUndefined();
    expect(await silent.closedWithin(5_000)).toBe(true);
    const after = silent.closedAt! - silent.openedAt;
    expect(after).toBeGreaterThanOrEqual(550);
    expect(after).toBeLessThan(3_000);
    expect(silent.got).toBe(''); // closed quietly: no request, no response
  });

  it('closes a keep-alive connection idle after its response, but keeps one that is in use', async () => {
    const b = await start(['--idle-timeout-ms', '600']);
    const idle = await open(b.port);
    idle.send('GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
    await pollUntil('a response', async () => idle.got.includes('ok\n'));
    expect(await idle.closedWithin(5_000)).toBe(true);

    // A request every ~300 ms for 3 s, each sent once the one before is answered: never the
    // 1.5 s idle timeout without one (with room for a slow CI machine), so never closed.
    const b2 = await start(['--idle-timeout-ms', '1500']);
    const busy = await open(b2.port);
    for (let i = 1; i <= 10; i++) {
      busy.send('GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
      await pollUntil(`response ${i}`, async () => busy.got.split('ok\n').length - 1 === i || busy.closedAt !== undefined, 2_000);
      expect(busy.closedAt).toBeUndefined();
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(busy.closedAt).toBeUndefined();
  });

  it('closes a request head that is not complete --header-timeout-ms after its first byte, however it trickles', async () => {
    const b = await start(['--idle-timeout-ms', '10000', '--header-timeout-ms', '500']);
    const slow = await open(b.port);
    const head = 'GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n';
    const started = Date.now();
    // One byte every 100 ms: never idle for long, but the head never ends.
    for (let i = 0; i < head.length && slow.closedAt === undefined && Date.now() - started < 5_000; i++) {
      slow.send(head[i]!);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(slow.closedAt).toBeDefined();
    const after = slow.closedAt! - started;
    expect(after).toBeGreaterThanOrEqual(450);
    expect(after).toBeLessThan(3_000);
  });

  it('closes a request body that stalls for --idle-timeout-ms', async () => {
    const b = await start(['--idle-timeout-ms', '600']);
    const c = await open(b.port);
    c.send('POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc');
    const sent = Date.now();
    expect(await c.closedWithin(5_000)).toBe(true);
    expect(c.closedAt! - sent).toBeGreaterThanOrEqual(550);
    expect(c.got).toBe('');
  });

  it('refuses a timeout that is not a positive number of milliseconds', () => {
    for (const flag of ['--idle-timeout-ms', '--header-timeout-ms']) {
      for (const bad of ['0', '-5', 'x', '']) {
        let status = 0;
        let stderr = '';
        try {
          execFileSync(binary, ['--listen', '127.0.0.1:1', flag, bad], { stdio: 'pipe' });
        } catch (e) {
          ({ status, stderr } = e as { status: number; stderr: string });
        }
        expect(status).toBe(2);
        expect(String(stderr)).toContain(`${flag} needs milliseconds`);
      }
    }
  });

  it('runs TCP keepalive on accepted connections', async () => {
    const b = await start([]);
    const c = await open(b.port);
    c.send('GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
    await pollUntil('a response', async () => c.got.includes('ok\n'));
    // The backend's side of the connection (source port = the backend's) has a keepalive timer.
    const ss = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${b.port} )`], { encoding: 'utf8' });
    expect(ss).toMatch(/timer:\(keepalive,/);
  });

  it('waits out a failing poll() (ENOMEM) with a doubling pause instead of exiting, then serves again', async () => {
    const flag = join(build, 'fail-poll');
    const b = await start([], { env: { LD_PRELOAD: shim, BACKEND_FAIL_POLL_WHILE: flag } });
    expect(await health(b.port)).toBe(true);
    writeFileSync(flag, '');
    try {
      // A request made while poll() fails is answered once it works again.
      const waiting = health(b.port);
      const failures = (): number => b.log().split('\n').filter((l) => l.includes('poll failed')).length;
      await pollUntil('poll() to fail', async () => failures() > 0 || b.child.exitCode !== null);
      await new Promise((r) => setTimeout(r, 2_000));
      expect(b.child.exitCode, b.log()).toBeNull();
      // 10, 20, 40 ... 1000 ms: about ten in 2 s, where retrying at once would log thousands.
      expect(failures()).toBeGreaterThan(3);
      expect(failures()).toBeLessThan(30);
      expect(b.log()).toMatch(/poll failed \(Cannot allocate memory\), retrying in \d+ ms/);
      unlinkSync(flag);
      expect(await waiting).toBe(true);
    } finally {
      rmSync(flag, { force: true });
    }
    expect(await health(b.port)).toBe(true);
    expect(b.child.exitCode).toBeNull();
  });

  it('with its client table full, lets a new connection wait and serves it when a slot frees', async () => {
    const b = await start([], { bin: smallBinary });
    const first = await open(b.port);
    const second = await open(b.port);
    first.send('GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
    second.send('GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
    await pollUntil('both answered', async () => first.got.includes('ok\n') && second.got.includes('ok\n'));
    const third = await open(b.port);
    third.send('GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
    await new Promise((r) => setTimeout(r, 500));
    // Not accepted yet: neither answered nor closed (accepting and closing it would drop it).
    expect(third.got).toBe('');
    expect(third.closedAt).toBeUndefined();
    first.sock.destroy();
    await pollUntil('the waiting connection to be answered', async () => third.got.includes('ok\n'), 5_000);
    expect(third.closedAt).toBeUndefined();
  });
});
