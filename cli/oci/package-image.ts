/** An app image (app-image.ts) turned into the blobs of its layout: its files read, put in a layer, described. */
import { readFileSync } from 'node:fs';
import type { AppImage } from './app-image.js';
import { imageBlobs, type ImageBlobs } from './image.js';
import { layerTar } from './layer.js';

export async function packageAppImage(image: AppImage): Promise<ImageBlobs> {
  const layer = await layerTar(image.files.map((file) => ({
    path: file.path,
    mode: file.mode,
    data: 'source' in file ? readFileSync(file.source) : Buffer.from(file.text, 'utf8'),
  })));
  return imageBlobs({
    architecture: image.architecture,
    layer,
    entrypoint: image.entrypoint,
    cmd: image.cmd,
    exposedPorts: image.exposedPorts,
    labels: image.labels,
    annotations: image.annotations,
  });
}
