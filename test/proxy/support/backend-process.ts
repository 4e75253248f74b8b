import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'backend-process.mjs');

/** A test backend running as a separate process (see backend-process.mjs). */
export interface BackendProcess {
  name: string;
  port: number;
  address: string;
  child: ChildProcess;
  /** SIGKILL, then wait until the process is gone. */
  kill(): Promise<void>;
  /** Blocks the backend's event loop: it stops accepting and answering. Resolves once it has. */
  freeze(): Promise<void>;
}

export async function startBackendProcess(name: string, port = 0): Promise<BackendProcess> {
  const child = spawn(process.execPath, [script, name, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const actual = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`backend ${name} did not start`)), 15_000);
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /port=(\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`backend ${name} exited with ${code}`)); });
  });
  return {
    name,
    port: actual,
    address: `127.0.0.1:${actual}`,
    child,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    freeze: () => new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`backend ${name} did not freeze`)), 15_000);
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('frozen')) { clearTimeout(timer); resolve(); }
      });
      child.stdin!.write('freeze\n');
    }),
  };
}
