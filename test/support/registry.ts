import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { freePorts } from './pebble.js';

/**
 * A real OCI registry for tests: Debian's docker-registry (the CNCF distribution registry) on
 * 127.0.0.1 over plain HTTP, storing into a directory of the test. With `htpasswd` (a line
 * `user:bcrypt-hash`) it asks for basic authentication. Stopped by its PID.
 */

export interface TestRegistry {
  /** `127.0.0.1:PORT`. */
  address: string;
  stop(): Promise<void>;
}

export async function startRegistry(dir: string, options: { htpasswd?: string } = {}): Promise<TestRegistry> {
  const [port] = await freePorts(1);
  const address = `127.0.0.1:${port}`;
  const htpasswdFile = join(dir, `htpasswd-${port}`);
  if (options.htpasswd !== undefined) writeFileSync(htpasswdFile, `${options.htpasswd}\n`);
  const configFile = join(dir, `registry-${port}.yml`);
  writeFileSync(configFile, [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, `registry-${port}`)}`,
    'http:',
    `  addr: ${address}`,
    // A fixed secret: without one the registry makes up one and says so in its log.
    '  secret: uproxy-test-registry',
    ...(options.htpasswd === undefined ? [] : ['auth:', '  htpasswd:', '    realm: uproxy-test', `    path: ${htpasswdFile}`]),
    '',
  ].join('\n'));
  const logFile = join(dir, `registry-${port}.log`);
  const child: ChildProcess = spawn('docker-registry', ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(logFile);
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const log = (): string => readFileSync(logFile, 'utf8');
  const stop = (): Promise<void> => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited at start: ${log()}`);
    // 200, or 401 when it asks for credentials: either way it serves the API.
    const status = await new Promise<number>((resolve) => {
      get(`http://${address}/v2/`, { timeout: 2000 }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      }).on('error', () => resolve(0));
    });
    if (status === 200 || status === 401) return { address, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not serve http://${address}/v2/ within 15 s: ${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
