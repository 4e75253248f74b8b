import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageBlobs, MEDIA_TYPES, type ImageSpec } from '../../cli/oci/image.js';
import { imageName, layoutDir, readImageDigest, writeImageLayout } from '../../cli/oci/layout.js';

const work = mkdtempSync(join(tmpdir(), 'uproxy-oci-image-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const spec: ImageSpec = {
  architecture: 'amd64',
  layer: Buffer.from('a layer'),
  entrypoint: ['/uproxy-proxy'],
  cmd: ['--listen', '0.0.0.0:8080'],
  exposedPorts: [8081, 8080],
  labels: { 'z.last': '1', 'a.first': '2' },
  annotations: { 'com.urunc.unikernel.hypervisor': 'qemu', 'com.urunc.unikernel.binary': '/.boot/kernel' },
};

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const parse = (data: Buffer | undefined): any => JSON.parse(data!.toString('utf8'));

describe('imageBlobs', () => {
  const image = imageBlobs(spec);
  const [config, layer, manifest] = image.blobs;

  it('names every blob by its SHA-256 and describes config and layer in the manifest', () => {
    for (const blob of image.blobs) expect(blob.digest).toBe(sha256(blob.data));
    expect(parse(manifest!.data)).toEqual({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.manifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config!.digest, size: config!.data.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer!.digest, size: layer!.data.length }],
      annotations: spec.annotations,
    });
    expect(layer!.data).toEqual(spec.layer);
  });

  it('writes a config without a creation time, whose diff ID is the uncompressed layer\'s digest', () => {
    expect(parse(config!.data)).toEqual({
      architecture: 'amd64',
      os: 'linux',
      config: { Entrypoint: ['/uproxy-proxy'], Cmd: ['--listen', '0.0.0.0:8080'], ExposedPorts: { '8080/tcp': {}, '8081/tcp': {} }, Labels: { 'a.first': '2', 'z.last': '1' } },
      rootfs: { type: 'layers', diff_ids: [layer!.digest] },
    });
    expect(config!.data.toString()).not.toContain('created');
  });

  it('indexes the one manifest as latest', () => {
    expect(parse(image.index)).toEqual({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.index,
      manifests: [{ mediaType: MEDIA_TYPES.manifest, digest: manifest!.digest, size: manifest!.data.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
    });
    expect(image.manifest.digest).toBe(manifest!.digest);
  });

  it('gives the same digest for the same image, whatever order labels, annotations and ports come in', () => {
    const reordered = imageBlobs({
      ...spec,
      exposedPorts: [8080, 8081],
      labels: Object.fromEntries(Object.entries(spec.labels).reverse()),
      annotations: Object.fromEntries(Object.entries(spec.annotations).reverse()),
    });
    expect(reordered.manifest.digest).toBe(image.manifest.digest);
    expect(imageBlobs({ ...spec, cmd: ['--listen', '0.0.0.0:9090'] }).manifest.digest).not.toBe(image.manifest.digest);
  });

  it('leaves out what an image does not have', () => {
    const bare = imageBlobs({ ...spec, entrypoint: undefined, exposedPorts: [], labels: {}, annotations: {} });
    expect(parse(bare.blobs[0]!.data).config).toEqual({ Cmd: ['--listen', '0.0.0.0:8080'] });
    expect(parse(bare.blobs[2]!.data)).not.toHaveProperty('annotations');
  });
});

describe('the image layout', () => {
  const project = join(work, 'project');

  it('has no digest before a build', () => {
    expect(readImageDigest(project, 'proxy')).toBeNull();
  });

  it('holds the image under .uproxy/oci/<app> and gives its manifest digest', () => {
    const image = imageBlobs(spec);
    const dir = layoutDir(project, 'proxy');
    expect(dir).toBe(join(project, '.uproxy/oci/proxy'));
    writeImageLayout(dir, image);
    expect(JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(readFileSync(join(dir, 'index.json'))).toEqual(image.index);
    expect(readdirSync(join(dir, 'blobs/sha256')).sort()).toEqual(image.blobs.map((b) => b.digest.slice(7)).sort());
    expect(readImageDigest(project, 'proxy')).toBe(image.manifest.digest);
  });

  it('drops the blobs of the image it replaces', () => {
    const dir = layoutDir(project, 'proxy');
    const next = imageBlobs({ ...spec, layer: Buffer.from('another layer') });
    writeImageLayout(dir, next);
    expect(readdirSync(join(dir, 'blobs/sha256')).sort()).toEqual(next.blobs.map((b) => b.digest.slice(7)).sort());
    expect(readImageDigest(project, 'proxy')).toBe(next.manifest.digest);
  });

  it('says how to fix an index it cannot read', () => {
    const dir = layoutDir(project, 'backend');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.json'), '{"manifests": []}');
    expect(() => readImageDigest(project, 'backend')).toThrow(/index\.json is not an OCI index with a manifest tagged "latest": run `uproxy build --oci`/);
    writeFileSync(join(dir, 'index.json'), 'not json');
    expect(() => readImageDigest(project, 'backend')).toThrow(/run `uproxy build --oci`/);
  });

  it('names each image after its fleet and app', () => {
    expect(imageName('demo', 'proxy')).toBe('demo-proxy');
  });
});
