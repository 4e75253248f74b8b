/**
 * The JSON of an OCI image (image-spec v1.1): its config, its manifest and the index of the
 * layout that holds it, each serialized one way only (fixed key order, labels and annotations
 * sorted, no whitespace, no `created` time), so the same layer and settings always give the
 * same manifest digest. Pure: the layout writer puts these bytes on disk.
 */
import { createHash } from 'node:crypto';

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  /** Uncompressed: see layer.ts for why. */
  layer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

/** The tag every layout's one manifest carries in index.json (what `oci:<dir>:latest` names). */
export const REF_NAME = 'latest';
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageSpec {
  /** GOARCH spelling: `amd64`, `arm64`. */
  architecture: string;
  /** The one layer, an uncompressed tar (layer.ts). */
  layer: Buffer;
  entrypoint?: readonly string[];
  cmd: readonly string[];
  exposedPorts: readonly number[];
  labels: Readonly<Record<string, string>>;
  /** The manifest's annotations. */
  annotations: Readonly<Record<string, string>>;
}

export interface Blob {
  digest: string;
  data: Buffer;
}

export interface ImageBlobs {
  /** Config, layer and manifest: what goes in `blobs/sha256/`. */
  blobs: Blob[];
  manifest: Descriptor;
  /** The layout's `index.json`: this one manifest, tagged REF_NAME. */
  index: Buffer;
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function imageBlobs(spec: ImageSpec): ImageBlobs {
  const layer = blob(spec.layer);
  const config = blob(json({
    architecture: spec.architecture,
    os: 'linux',
    config: {
      ...(spec.entrypoint === undefined ? {} : { Entrypoint: spec.entrypoint }),
      Cmd: spec.cmd,
      ...(spec.exposedPorts.length === 0 ? {} : { ExposedPorts: Object.fromEntries([...spec.exposedPorts].sort((a, b) => a - b).map((port) => [`${port}/tcp`, {}])) }),
      ...(Object.keys(spec.labels).length === 0 ? {} : { Labels: sorted(spec.labels) }),
    },
    // An uncompressed layer's diff ID is its own digest.
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  }));
  const manifest = blob(json({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: descriptor(MEDIA_TYPES.config, config),
    layers: [descriptor(MEDIA_TYPES.layer, layer)],
    ...(Object.keys(spec.annotations).length === 0 ? {} : { annotations: sorted(spec.annotations) }),
  }));
  const manifestDescriptor = { ...descriptor(MEDIA_TYPES.manifest, manifest), annotations: { [REF_NAME_ANNOTATION]: REF_NAME } };
  return {
    blobs: [config, layer, manifest],
    manifest: manifestDescriptor,
    index: json({ schemaVersion: 2, mediaType: MEDIA_TYPES.index, manifests: [manifestDescriptor] }),
  };
}

function blob(data: Buffer): Blob {
  return { digest: sha256Digest(data), data };
}

function descriptor(mediaType: string, { digest, data }: Blob): Descriptor {
  return { mediaType, digest, size: data.byteLength };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function sorted(record: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
