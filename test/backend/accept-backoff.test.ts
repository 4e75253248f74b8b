import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../proxy/support/proxy.js';
import { pollUntil } from '../proxy/support/load.js';

// The default backend app (templates/backend) with too few file descriptors: accept() fails
// with EMFILE while connections wait in the queue. It must pause accepting (a few log lines)
// instead of spinning on a listener poll() keeps reporting readable (thousands of them), and
// serve again once descriptors are free.
const TEMPLATE = fileURLToPath(new URL('../../templates/backend', import.meta.url));

describe('backend template: accept backoff', () => {
  let build: string;
  let backend: ChildProcess | undefined;
  const clients: net.Socket[] = [];
  beforeAll(() => {
    build = mkdtempSync(join(tmpdir(), 'uproxy-backend-'));
    execFileSync('make', ['-C', TEMPLATE, `BUILD=${build}`], { stdio: 'ignore' });
  });
  afterAll(() => {
    for (const c of clients) c.destroy();
    if (backend?.exitCode === null) backend.kill('SIGKILL');
    rmSync(build, { recursive: true, force: true });
  });

  it('pauses accepting on EMFILE instead of spinning, and serves again when descriptors free up', async () => {
    const port = await freePort();
    // 0-2 are stdio and 3 the listener: two clients fit, the third accept() fails with EMFILE.
    backend = spawn('prlimit', ['--nofile=6:6', join(build, 'backend'), '--listen', `127.0.0.1:${port}`, '--name', 'b'],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    backend.stderr!.on('data', (d) => (log += d));
    await pollUntil('the backend to listen', async () => log.includes('listening'));

    for (let i = 0; i < 6; i++) {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => undefined);
      clients.push(c);
    }
    const failures = (): number => log.split('\n').filter((l) => l.includes('accept failed')).length;
    await pollUntil('an accept to fail', async () => failures() > 0);
    const before = failures();
    // The pause doubles up to 1 s: about ten retries over 2 s, where a spin makes thousands.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(failures() - before).toBeLessThan(30);
    expect(log).toMatch(/accept failed \(Too many open files\), retrying in \d+ ms/);

    for (const c of clients.splice(0)) c.destroy();
    await pollUntil('the backend to answer again', async () => {
      try {
        const res = await request(`http://127.0.0.1:${port}/health`);
        return res.statusCode === 200 && (await res.body.text()).trim() === 'ok';
      } catch {
        return false;
      }
    });
  });
});
