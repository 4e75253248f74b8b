/**
 * The OCI image layouts `uproxy build --oci` leaves in `.uproxy/oci/<app>/` (image-spec
 * image-layout.md): `oci-layout`, `index.json` naming one manifest tagged `latest`, and the
 * blobs. `index.json` is replaced last and atomically, so a reader (push, export) sees the old
 * image or the new one, each with all its blobs; blobs no image references any more go after.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod';
import { readIfExists, stateDir, writeFileAtomic } from '../files.js';
import { UserError } from '../errors.js';
import { MEDIA_TYPES, REF_NAME, REF_NAME_ANNOTATION, type ImageBlobs } from './image.js';

export type ImageApp = 'proxy' | 'backend';

export const IMAGE_APPS: readonly ImageApp[] = ['proxy', 'backend'];

/** The repository an app's image is pushed to under `--registry`: `<fleet>-<app>`, as its machines are named. */
export function imageName(fleet: string, app: string): string {
  return `${fleet}-${app}`;
}

export function layoutDir(projectDir: string, app: ImageApp): string {
  return join(stateDir(projectDir), 'oci', app);
}

export function writeImageLayout(dir: string, image: ImageBlobs): void {
  const blobDir = join(dir, 'blobs', 'sha256');
  mkdirSync(blobDir, { recursive: true });
  writeFileAtomic(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const blob of image.blobs) {
    const file = join(blobDir, hex(blob.digest));
    // Named by its content: one already there holds these bytes.
    if (!existsSync(file)) writeFileAtomic(file, blob.data);
  }
  writeFileAtomic(join(dir, 'index.json'), image.index);
  const kept = new Set(image.blobs.map((blob) => hex(blob.digest)));
  for (const name of readdirSync(blobDir)) if (!kept.has(name)) rmSync(join(blobDir, name), { force: true });
}

const indexJson = z.object({
  manifests: z.array(z.object({
    mediaType: z.string(),
    digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
    annotations: z.record(z.string(), z.string()).optional(),
  })),
});

/** The manifest digest (`sha256:…`) of the app's image in `.uproxy/oci/<app>/`, or null when it has none. */
export function readImageDigest(projectDir: string, app: ImageApp): string | null {
  const file = join(layoutDir(projectDir, app), 'index.json');
  const text = readIfExists(file);
  if (text === null) return null;
  let parsed: z.infer<typeof indexJson> | undefined;
  try {
    const result = indexJson.safeParse(JSON.parse(text));
    if (result.success) parsed = result.data;
  } catch {
    // Not JSON: reported below like any other file that is not an index uproxy wrote.
  }
  const tagged = parsed?.manifests.find((m) => m.mediaType === MEDIA_TYPES.manifest && m.annotations?.[REF_NAME_ANNOTATION] === REF_NAME);
  if (tagged === undefined) throw new UserError(`${file} is not an OCI index with a manifest tagged "${REF_NAME}": run \`uproxy build --oci\` to write the image again`);
  return tagged.digest;
}

function hex(digest: string): string {
  return digest.slice('sha256:'.length);
}
