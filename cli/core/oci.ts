/**
 * `uproxy build --oci` and `uproxy push`: each app of the fleet (proxy, backend) packaged as an
 * OCI image layout in `.uproxy/oci/<app>/` from what its runtime builds, and those layouts
 * copied to a registry with skopeo, digests unchanged. Both hold the project lock: a build
 * runs `make` and `kraft build` in the apps as `up` does, and replaces the blobs a push reads.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { execa } from 'execa';
import { loadConfig } from '../config/load.js';
import type { RuntimeName } from '../config/schema.js';
import { toShell } from '../fleet/argv.js';
import { planFleet } from '../fleet/plan.js';
import { withLock } from '../fleet/state.js';
import { imageKind, ociArchitecture, planAppImage, type ImageKind } from '../oci/app-image.js';
import { buildImageApps } from '../oci/app-builds.js';
import { IMAGE_APPS, imageName, layoutDir, readImageDigest, writeImageLayout, type ImageApp } from '../oci/layout.js';
import { packageAppImage } from '../oci/package-image.js';
import { parseRegistry, pushFailure, SKOPEO, skopeoPushCommand } from '../oci/skopeo.js';
import type { Progress } from '../progress.js';
import { findOnPath } from '../runtimes/processes.js';
import { UserError } from '../errors.js';
import { runtimeContext } from './context.js';

export interface BuildImagesRequest {
  dir: string;
  /** The runtime whose build the images take (the project's when absent). */
  runtime?: RuntimeName;
}

export interface BuiltImage {
  app: ImageApp;
  kind: ImageKind;
  /** The layout directory, relative to the project. */
  layout: string;
  /** The manifest digest, `sha256:…`. */
  digest: string;
}

export async function buildImages(request: BuildImagesRequest, progress: Progress): Promise<BuiltImage[]> {
  const projectDir = resolve(request.dir);
  const plan = planFleet(loadConfig(projectDir), projectDir, { runtime: request.runtime });
  const kind = imageKind(plan);
  return withLock(projectDir, 'build --oci', async () => {
    const built = await buildImageApps(plan, runtimeContext(projectDir, progress));
    const images: BuiltImage[] = [];
    for (const app of IMAGE_APPS) {
      const dir = layoutDir(projectDir, app);
      const digest = await progress.step(`image ${app} (${kind}) in ${relative(projectDir, dir)}`, async () => {
        const blobs = await packageAppImage(planAppImage(plan, app, built[app], ociArchitecture(process.arch)));
        writeImageLayout(dir, blobs);
        return blobs.manifest.digest;
      });
      images.push({ app, kind, layout: relative(projectDir, dir), digest });
    }
    return images;
  });
}

export interface PushRequest {
  dir: string;
  /** `HOST[:PORT][/REPO...]`. */
  registry: string;
  /** Plain HTTP or an unverified certificate (`--insecure`). */
  insecure: boolean;
}

export interface PushedImage {
  app: ImageApp;
  /** `HOST/REPO/<fleet>-<app>@sha256:…`: the image as the registry now holds it. */
  reference: string;
}

export async function pushImages(request: PushRequest, progress: Progress): Promise<PushedImage[]> {
  const projectDir = resolve(request.dir);
  const registry = parseRegistry(request.registry);
  if (registry === null) {
    throw new UserError(`--registry ${request.registry}: expected HOST[:PORT][/REPO], e.g. 127.0.0.1:5000/uproxy or ghcr.io/you, with the repository part in lowercase letters, digits and . _ -`);
  }
  const { name: fleet } = loadConfig(projectDir);
  return withLock(projectDir, 'push', async () => {
    const layouts = IMAGE_APPS.map((app) => ({ app, dir: layoutDir(projectDir, app), digest: readImageDigest(projectDir, app) }));
    const missing = layouts.filter((l) => l.digest === null);
    if (missing.length > 0) {
      throw new UserError(`no OCI image to push in ${missing.map((l) => relative(projectDir, l.dir)).join(' and ')}: run \`uproxy build --oci\` first`);
    }
    for (const { dir } of layouts) {
      // skopeo's oci: transport splits its argument at the first colon after the path.
      if (dir.includes(':')) throw new UserError(`${dir} has a ":" in its path, which skopeo's oci: transport cannot name: move the project to a path without one`);
    }
    if (findOnPath(SKOPEO) === null) throw new UserError('skopeo is not installed or not on PATH (uproxy push copies the images with it): apt-get install skopeo');

    const work = mkdtempSync(join(tmpdir(), 'uproxy-push-'));
    try {
      const pushed: PushedImage[] = [];
      for (const { app, dir, digest } of layouts) {
        const repository = `${registry.prefix}/${imageName(fleet, app)}`;
        const digestFile = join(work, `${app}.digest`);
        const command = skopeoPushCommand({ layout: dir, repository, insecure: request.insecure, digestFile });
        await progress.step(`push ${app} to ${repository}`, async () => {
          const result = await execa(command.file, command.args, { all: true, reject: false, stdin: 'ignore' });
          for (const line of (result.all ?? '').split('\n')) if (line.trim().length > 0) progress.log(line);
          if (result.failed) {
            const output = result.all ?? result.originalMessage ?? '';
            throw new UserError(`${pushFailure(output, registry, request.insecure)} (\`${toShell(command)}\` failed); skopeo said:`, output.trim().split('\n').slice(-5));
          }
        });
        const stored = readFileSync(digestFile, 'utf8').trim();
        if (stored !== digest) {
          throw new UserError(`${repository} now holds ${stored}, not the image built in ${relative(projectDir, dir)} (${digest}): the registry rewrote its manifest; push to another registry or report this`);
        }
        pushed.push({ app, reference: `${repository}@${digest}` });
      }
      return pushed;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}
