/**
 * An image layer as a tar that depends on nothing but the files' paths, bytes and modes:
 * entries sorted by path, every parent directory an entry of its own, owner root (0:0),
 * modification time 0. It stays uncompressed: gzip is the one step a rebuild could not repeat
 * byte for byte, since Node's zlib (Chromium's) finds other matches with and without the CPU's
 * SIMD instructions, so the same files would get another digest on another machine.
 */
import { pack } from 'tar-stream';

export interface LayerFile {
  /** Where it goes in the image, relative to its root: `uproxy-proxy`, `.boot/kernel`. */
  path: string;
  data: Uint8Array;
  mode: number;
}

const EPOCH = new Date(0);
const DIRECTORY_MODE = 0o755;

export async function layerTar(files: readonly LayerFile[]): Promise<Buffer> {
  const seen = new Set<string>();
  for (const file of files) {
    if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(file.path) || file.path.split('/').some((part) => part === '.' || part === '..')) {
      throw new Error(`layer path "${file.path}" must be relative, without . or .. and of A-Z, a-z, 0-9, ".", "_", "-" only`);
    }
    if (file.path.length > 100) throw new Error(`layer path "${file.path}" is longer than a ustar name (100 bytes)`);
    if (seen.has(file.path)) throw new Error(`layer path "${file.path}" is given twice`);
    seen.add(file.path);
  }
  const directories = new Set(files.flatMap((file) => file.path.split('/').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('/'))));
  for (const directory of directories) if (seen.has(directory)) throw new Error(`layer path "${directory}" is both a file and a directory`);

  const entries = [
    ...[...directories].map((path) => ({ path, type: 'directory' as const, mode: DIRECTORY_MODE, data: undefined })),
    ...files.map((file) => ({ ...file, type: 'file' as const })),
  ].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const tar = pack();
  for (const entry of entries) {
    // A directory's name ends in a slash, as GNU tar and BuildKit write it.
    const header = { name: entry.type === 'directory' ? `${entry.path}/` : entry.path, type: entry.type, mode: entry.mode, uid: 0, gid: 0, uname: '', gname: '', mtime: EPOCH };
    if (entry.data === undefined) tar.entry(header);
    else tar.entry({ ...header, size: entry.data.byteLength }, entry.data);
  }
  tar.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of tar) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}
