import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readImageDigest } from '../../cli/oci/layout.js';
import { findOnPath } from '../../cli/runtimes/processes.js';
import { BIN, uproxy } from '../cli/run.js';
import { skipUnlessCi } from '../support/prerequisites.js';
import { freePorts } from '../support/pebble.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';

/**
 * `uproxy build --oci` and `uproxy push` end to end: fresh projects of the qemu runtime (microvm
 * guests: static binaries; unikraft guests: kernels, built by the kraft STAND-IN of test/kraft/bin
 * since kraft cannot run here) and of the kraft runtime, packaged twice to the same digests,
 * read by skopeo, pushed to a real registry (Debian's docker-registry on 127.0.0.1, plain
 * HTTP) and pulled back byte for byte.
 */

const FAKE_KRAFT_BIN = fileURLToPath(new URL('../kraft/bin', import.meta.url));
const missing = ['skopeo', 'docker-registry'].find((program) => findOnPath(program) === null);
const skip = skipUnlessCi(missing === undefined ? undefined : `needs ${missing} (apt-get install skopeo docker-registry)`) !== undefined;

/** bcrypt (cost 4) of TEST_PASSWORD, made once with python3's crypt: the registry takes bcrypt only, and Node has none. */
const TEST_USER = 'tester';
const TEST_PASSWORD = 'uproxy-test';
const TEST_HTPASSWD = `${TEST_USER}:$2b$04$F/O7NJx9lk5PfKJrwj.OoOWF98RnrrFQZbHi6wDUj8tO6YC.e5uW2`;

let root: string;
let registry: TestRegistry;
let lockedRegistry: TestRegistry;
beforeAll(async () => {
  if (skip) return;
  root = mkdtempSync(join(tmpdir(), 'uproxy-oci-'));
  [registry, lockedRegistry] = await Promise.all([startRegistry(root), startRegistry(root, { htpasswd: TEST_HTPASSWD })]);
});
afterAll(async () => {
  if (skip) return;
  await Promise.all([registry?.stop(), lockedRegistry?.stop()]);
  rmSync(root, { recursive: true, force: true });
});

interface Project {
  dir: string;
  env: Record<string, string>;
}

/** `uproxy init NAME --runtime R`, with `edit` applied to its uproxy.json and the kraft stand-in first on PATH. */
async function newProject(name: string, runtime: 'qemu' | 'kraft', edit: (config: Record<string, any>) => void = () => {}): Promise<Project> {
  const init = await uproxy(['init', name, '--runtime', runtime], root);
  expect(init.exitCode, init.stderr).toBe(0);
  const dir = join(root, name);
  const config = JSON.parse(readFileSync(join(dir, 'uproxy.json'), 'utf8'));
  edit(config);
  writeFileSync(join(dir, 'uproxy.json'), JSON.stringify(config, null, 2));
  const fakeDir = join(dir, '.fake-kraft');
  mkdirSync(fakeDir);
  return { dir, env: { PATH: `${FAKE_KRAFT_BIN}${delimiter}${process.env.PATH}`, FAKE_KRAFT_DIR: fakeDir } };
}

/** `uproxy build --oci`, checked to succeed, with the digest it printed for each app (which must be the layout's). */
async function buildOci(project: Project): Promise<Record<'proxy' | 'backend', string>> {
  const result = await uproxy(['build', '--oci'], project.dir, 120_000, project.env);
  expect(result.exitCode, result.stderr).toBe(0);
  const printed = Object.fromEntries(result.stdout.trim().split('\n').map((line) => {
    const [layout, digest] = line.split(/\s+/);
    return [layout!.replace('.uproxy/oci/', ''), digest!];
  }));
  expect(printed).toEqual({ proxy: readImageDigest(project.dir, 'proxy'), backend: readImageDigest(project.dir, 'backend') });
  return printed as Record<'proxy' | 'backend', string>;
}

/** Built twice, the second time with the layouts gone: every byte of the image is made again. */
async function buildTwice(project: Project): Promise<Record<'proxy' | 'backend', string>> {
  const first = await buildOci(project);
  rmSync(join(project.dir, '.uproxy/oci'), { recursive: true });
  expect(await buildOci(project)).toEqual(first);
  return first;
}

async function skopeo(args: string[], env: Record<string, string> = {}): Promise<string> {
  const result = await execa('skopeo', args, { reject: false, env });
  expect(result.exitCode, result.stderr).toBe(0);
  return result.stdout;
}

function layout(project: Project, app: string): string {
  return join(project.dir, '.uproxy/oci', app);
}

function layerOf(project: Project, app: string, manifest: { layers: { digest: string }[] }): string {
  return join(layout(project, app), 'blobs/sha256', manifest.layers[0]!.digest.slice('sha256:'.length));
}

/** Pulls `reference` back from the registry into a fresh layout, and checks every blob is the built one's, byte for byte. */
async function pullsBackTheSame(reference: string, built: string): Promise<void> {
  const pulled = mkdtempSync(join(root, 'pulled-'));
  await skopeo(['copy', '--preserve-digests', '--src-tls-verify=false', `docker://${reference}`, `oci:${pulled}:pulled`]);
  const blobs = readdirSync(join(pulled, 'blobs/sha256')).sort();
  expect(blobs).toEqual(readdirSync(join(built, 'blobs/sha256')).sort());
  for (const blob of blobs) expect(readFileSync(join(pulled, 'blobs/sha256', blob)).equals(readFileSync(join(built, 'blobs/sha256', blob)))).toBe(true);
}

describe.skipIf(skip)('uproxy build --oci and push', () => {
  let microvm: Project;
  let unikraft: Project;
  let unikraftDigests: Record<'proxy' | 'backend', string>;

  it('packs the static binaries of microvm guests, to the same digests each time, as images skopeo reads', async () => {
    microvm = await newProject('vm', 'qemu');
    const digests = await buildTwice(microvm);
    const inspected = JSON.parse(await skopeo(['inspect', `oci:${layout(microvm, 'proxy')}:latest`]));
    expect(inspected).toMatchObject({ Digest: digests.proxy, Architecture: 'amd64', Os: 'linux', Labels: null });
    const config = JSON.parse(await skopeo(['inspect', '--config', `oci:${layout(microvm, 'proxy')}:latest`]));
    expect(config.config.Entrypoint).toEqual(['/uproxy-proxy']);
    expect(config.config.Cmd.join(' ')).toMatch(/^--listen 0\.0\.0\.0:8080 --admin 0\.0\.0\.0:8081 /);
    expect(config.created).toBeUndefined();
    const manifest = JSON.parse(await skopeo(['inspect', '--raw', `oci:${layout(microvm, 'backend')}:latest`]));
    const listing = await execa('tar', ['--list', '--verbose', '--numeric-owner', '-f', layerOf(microvm, 'backend', manifest)], { env: { TZ: 'UTC' } });
    expect(listing.stdout).toMatch(/^-rwxr-xr-x 0\/0 +\d+ 1970-01-01 00:00 backend$/);
    // `make static` of both apps takes most of this file's time (~10 s, more on a loaded machine).
  }, 60_000);

  it('packs the kraft-built kernels of unikraft guests with urunc\'s annotations, to the same digests each time', async () => {
    unikraft = await newProject('uk', 'qemu', (config) => (config.qemu = { guest: 'unikraft' }));
    // The qemu runtime boots kraft's kernels without building them; a user runs kraft build first.
    for (const app of ['proxy', 'backend']) {
      const build = await execa('kraft', ['build', '--no-prompt', '--plat', 'qemu', '--arch', 'x86_64', '.'], { cwd: join(unikraft.dir, app), env: unikraft.env, reject: false });
      expect(build.exitCode, build.stderr).toBe(0);
    }
    unikraftDigests = await buildTwice(unikraft);
    const { Labels } = JSON.parse(await skopeo(['inspect', `oci:${layout(unikraft, 'backend')}:latest`]));
    const annotations = {
      'com.urunc.unikernel.binary': '/.boot/kernel',
      'com.urunc.unikernel.cmdline': '--listen 0.0.0.0:8080 --name backend',
      'com.urunc.unikernel.hypervisor': 'qemu',
      'com.urunc.unikernel.mountRootfs': 'false',
      'com.urunc.unikernel.unikernelType': 'unikraft',
    };
    expect(Labels).toEqual(annotations);
    const manifest = JSON.parse(await skopeo(['inspect', '--raw', `oci:${layout(unikraft, 'backend')}:latest`]));
    expect(manifest.annotations).toEqual(annotations);
    const layer = layerOf(unikraft, 'backend', manifest);
    const kernel = await execa('tar', ['-xO', '-f', layer, '.boot/kernel'], { encoding: 'buffer', stripFinalNewline: false });
    expect(Buffer.from(kernel.stdout).equals(readFileSync(join(unikraft.dir, 'backend/.unikraft/build/backend_qemu-x86_64')))).toBe(true);
    const uruncJson = JSON.parse((await execa('tar', ['-xO', '-f', layer, 'urunc.json'])).stdout) as Record<string, string>;
    expect(Object.fromEntries(Object.entries(uruncJson).map(([key, value]) => [key, Buffer.from(value, 'base64').toString()]))).toEqual(annotations);
  });

  it('runs kraft build for the kraft runtime, and packs the same backend kernel to the same image', async () => {
    const project = await newProject('kr', 'kraft');
    const digests = await buildOci(project);
    const calls = readFileSync(join(project.env.FAKE_KRAFT_DIR!, 'invocations.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as string[]);
    expect(calls.map((args) => [args[0], args.at(-1)])).toEqual([['build', join(project.dir, 'proxy')], ['build', join(project.dir, 'backend')]]);
    // The stand-in's backend kernel and the backend's arguments do not depend on the fleet.
    expect(digests.backend).toBe(unikraftDigests.backend);
  });

  it('pushes every image to a registry under its digest, and the registry gives the same bytes back', async () => {
    for (const project of [microvm, unikraft]) {
      const push = await uproxy(['push', '--registry', `${registry.address}/uproxy`, '--insecure'], project.dir);
      expect(push.exitCode, push.stderr).toBe(0);
      const fleet = project === microvm ? 'vm' : 'uk';
      const references = push.stdout.trim().split('\n');
      expect(references).toEqual(['proxy', 'backend'].map((app) => `${registry.address}/uproxy/${fleet}-${app}@${readImageDigest(project.dir, app as 'proxy' | 'backend')}`));
      for (const [i, app] of ['proxy', 'backend'].entries()) await pullsBackTheSame(references[i]!, layout(project, app));
    }
    const { Labels } = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${registry.address}/uproxy/uk-proxy:latest`]));
    expect(Labels['com.urunc.unikernel.unikernelType']).toBe('unikraft');
  });

  it('pushes with the credentials skopeo keeps, and says where they go when there are none', async () => {
    const target = ['push', '--registry', `${lockedRegistry.address}/uproxy`, '--insecure'];
    const refused = await uproxy(target, unikraft.dir);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain(`the registry ${lockedRegistry.address} wants credentials uproxy does not take on its command line: log in once with \`skopeo login --tls-verify=false ${lockedRegistry.address}\``);
    const authFile = join(root, 'auth.json');
    writeFileSync(authFile, JSON.stringify({ auths: { [lockedRegistry.address]: { auth: Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64') } } }));
    const pushed = await uproxy(target, unikraft.dir, 120_000, { REGISTRY_AUTH_FILE: authFile });
    expect(pushed.exitCode, pushed.stderr).toBe(0);
    expect(pushed.stdout).toContain(`${lockedRegistry.address}/uproxy/uk-proxy@${unikraftDigests.proxy}`);
  });

  it('says what to do when there is nothing to push, no skopeo, no HTTPS or no registry', async () => {
    const fresh = await newProject('fresh', 'qemu');
    const nothing = await uproxy(['push', '--registry', `${registry.address}/uproxy`, '--insecure'], fresh.dir);
    expect(nothing.stderr).toContain('no OCI image to push in .uproxy/oci/proxy and .uproxy/oci/backend: run `uproxy build --oci` first');

    const noSkopeo = await execa(process.execPath, [BIN, 'push', '--registry', `${registry.address}/uproxy`], { cwd: unikraft.dir, reject: false, env: { PATH: '/nonexistent' } });
    expect(noSkopeo.stderr).toContain('skopeo is not installed or not on PATH (uproxy push copies the images with it): apt-get install skopeo');

    const tls = await uproxy(['push', '--registry', `${registry.address}/uproxy`], unikraft.dir);
    expect(tls.stderr).toContain(`the registry ${registry.address} speaks plain HTTP, not HTTPS: if that is meant (a registry on this host or a test network), pass --insecure`);

    const [closed] = await freePorts(1);
    const unreachable = await uproxy(['push', '--registry', `127.0.0.1:${closed}/uproxy`, '--insecure'], unikraft.dir);
    expect(unreachable.stderr).toContain(`cannot reach the registry 127.0.0.1:${closed}: check the address and port in --registry and that the registry runs`);

    const badName = await uproxy(['push', '--registry', 'https://example.org/Uproxy'], unikraft.dir);
    expect(badName.stderr).toContain('--registry https://example.org/Uproxy: expected HOST[:PORT][/REPO]');
    for (const result of [nothing, noSkopeo, tls, unreachable, badName]) expect(result.exitCode).toBe(1);
  });
});
