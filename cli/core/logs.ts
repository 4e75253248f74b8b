import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stateDir } from '../files.js';
import { readState } from '../fleet/state.js';
import { UserError } from '../errors.js';

/** The log of a machine (or of a build: `build-proxy`, `build-backend`). */
export function logFile(dir: string, name: string): string {
  const projectDir = resolve(dir);
  const recorded = readState(projectDir)?.machines.find((m) => m.name === name)?.log;
  const file = recorded ?? join(stateDir(projectDir), 'logs', `${name}.log`);
  try {
    statSync(file);
  } catch {
    const known = readState(projectDir)?.machines.map((m) => m.name) ?? [];
    const hint = known.length > 0 ? `machines of this fleet: ${known.join(', ')}` : 'the fleet is not running (`uproxy up` first)';
    throw new UserError(`no log for "${name}" (${file}); ${hint}`);
  }
  return file;
}

/** Writes the file to `out`; with `follow`, keeps writing what is appended until `signal` aborts. */
export async function printLog(file: string, out: NodeJS.WritableStream, follow: boolean, signal?: AbortSignal): Promise<void> {
  let offset = copyFrom(file, 0, out);
  if (!follow) return;
  await new Promise<void>((resolvePromise) => {
    const onChange = (): void => {
      const size = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
      if (size < offset) offset = 0;
      offset = copyFrom(file, offset, out);
    };
    // Polled rather than fs.watchFile: watchFile takes its first stat asynchronously, so a line
    // appended before that stat would become part of its baseline and never be printed.
    const timer = setInterval(onChange, 200);
    signal?.addEventListener('abort', () => {
      clearInterval(timer);
      resolvePromise();
    });
  });
}

function copyFrom(file: string, offset: number, out: NodeJS.WritableStream): number {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(64 * 1024);
    let position = offset;
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, position);
      if (read === 0) return position;
      out.write(buffer.subarray(0, read));
      position += read;
    }
  } finally {
    closeSync(fd);
  }
}
