import { resolve } from 'node:path';
import { readState, withLock } from '../fleet/state.js';
import type { Progress } from '../progress.js';
import { loadRuntime } from '../runtimes/runtime.js';
import { runtimeContext } from './context.js';

export interface DownRequest {
  dir: string;
  force: boolean;
  timeoutMs: number;
}

/**
 * Stops everything the state file records; returns how many machines it had (0: nothing to do).
 * With `force` and no state file (deleted, or lost with its disk), host machines are still
 * found by the mark every process uproxy starts carries.
 */
export async function down(request: DownRequest, progress: Progress): Promise<number> {
  const projectDir = resolve(request.dir);
  return withLock(projectDir, 'down', async () => {
    const state = readState(projectDir);
    if (!state && request.force) {
      const { stopLostMachines } = await import('../runtimes/process-groups.js');
      return progress.step('stop the machines of this project that no state file records', () => stopLostMachines(projectDir, request.timeoutMs));
    }
    if (!state) return 0;
    const runtime = await loadRuntime(state.runtime);
    const count = state.machines.length;
    await progress.step(`stop ${count} machines of fleet ${state.fleet}`, () =>
      runtime.down(state, runtimeContext(projectDir, progress), { force: request.force, timeoutMs: request.timeoutMs }),
    );
    return count;
  });
}
