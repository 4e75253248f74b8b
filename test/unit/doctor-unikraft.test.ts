import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBuildkit, checkKraft } from '../../cli/runtimes/probe.js';

/**
 * `uproxy doctor`'s kraft and BuildKit checks. kraft cannot be installed here, so "present"
 * is a two-line stand-in script on PATH that answers `kraft version` as kraftkit does; the
 * BuildKit check talks to a real unix socket this test listens on.
 */

const dir = mkdtempSync(join(tmpdir(), 'uproxy-doctor-'));
const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  rmSync(dir, { recursive: true, force: true });
});

function listen(path: string): Promise<void> {
  const server = createServer((socket) => socket.destroy());
  servers.push(server);
  return new Promise((resolve) => server.listen(path, resolve));
}

/** A directory holding only a `kraft` shell script with this body; returns a PATH that finds it first. */
function standInKraft(name: string, body: string): string {
  const bin = join(dir, name);
  mkdirSync(bin);
  writeFileSync(join(bin, 'kraft'), `#!/bin/sh\n${body}\n`);
  chmodSync(join(bin, 'kraft'), 0o755);
  return `${bin}:/usr/bin:/bin`;
}

describe('doctor: kraft', () => {
  it('says kraft is not installed when it is not on PATH, with how to install it', async () => {
    const check = await checkKraft({ PATH: join(dir, 'empty') });
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/^not installed \(no kraft on PATH\)/);
    expect(check.fix).toContain('https://get.kraftkit.sh');
  });

  it('reports the version `kraft version` prints', async () => {
    const check = await checkKraft({ PATH: standInKraft('bin', '[ "$1" = version ] && echo "kraft 0.11.6 (linux/amd64) go1.23"') });
    expect(check).toEqual({ name: 'kraft', ok: true, detail: 'kraft 0.11.6 (linux/amd64) go1.23' });
  });

  it('tells a broken kraft from a missing one', async () => {
    const check = await checkKraft({ PATH: standInKraft('broken', 'echo "could not load config" >&2\nexit 2') });
    expect(check.ok).toBe(false);
    expect(check.detail).toBe('`kraft version` failed (exit 2): could not load config');
  });
});

describe('doctor: BuildKit', () => {
  const home = join(dir, 'home');

  it('says none was found, and how to get one or avoid needing it', async () => {
    const check = await checkBuildkit({ XDG_RUNTIME_DIR: join(dir, 'run-empty') }, home);
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/KRAFTKIT_BUILDKIT_HOST is not set and no buildkitd listens on/);
    expect(check.fix).toContain('KRAFTKIT_BUILDKIT_HOST=docker-container://buildkitd');
    expect(check.fix).toContain('"rootfs": "directory"');
  });

  it('finds buildkitd on its rootless socket', async () => {
    const runtimeDir = join(dir, 'run');
    mkdirSync(join(runtimeDir, 'buildkit'), { recursive: true });
    await listen(join(runtimeDir, 'buildkit/buildkitd.sock'));
    const check = await checkBuildkit({ XDG_RUNTIME_DIR: runtimeDir }, home);
    expect(check.ok).toBe(true);
    expect(check.detail).toContain(`buildkitd answers on ${runtimeDir}/buildkit/buildkitd.sock`);
  });

  it('checks the socket KRAFTKIT_BUILDKIT_HOST names', async () => {
    const socket = join(dir, 'bk.sock');
    const before = await checkBuildkit({ KRAFTKIT_BUILDKIT_HOST: `unix://${socket}` }, home);
    expect(before.ok).toBe(false);
    expect(before.detail).toBe(`KRAFTKIT_BUILDKIT_HOST is unix://${socket}, but nothing listens on ${socket}`);
    await listen(socket);
    const after = await checkBuildkit({ KRAFTKIT_BUILDKIT_HOST: `unix://${socket}` }, home);
    expect(after).toEqual({ name: 'BuildKit', ok: true, detail: `buildkitd answers on ${socket} (KRAFTKIT_BUILDKIT_HOST)` });
  });

  it('reads buildkit_host from kraftkit\'s config file', async () => {
    mkdirSync(join(home, '.config/kraftkit'), { recursive: true });
    writeFileSync(join(home, '.config/kraftkit/config.yaml'), 'log:\n  type: basic\nbuildkit_host: docker-container://buildkitd\n');
    const check = await checkBuildkit({}, home);
    expect(check.ok).toBe(true);
    expect(check.detail).toBe(`buildkit_host in ${home}/.config/kraftkit/config.yaml is docker-container://buildkitd (not checked: only unix sockets can be)`);
  });
});
