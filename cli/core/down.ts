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
 * Stops everything the state file records; returns how many machines were stopped (0: nothing
 * to do). With `force`, every process marked as a machine of this project is stopped too, so
 * a fleet whose state file is gone (deleted, or lost with its disk) or left something behind
 * unrecorded is still taken down.
 */
export async function down(request: DownRequest, progress: Progress): Promise<number> {
  const projectDir = resolve(request.dir);
  return withLock(projectDir, 'down', async () => {
    const state = readState(projectDir);
    // Counted first: the runtime forgets each machine from the state as it stops it.
    const recorded = state?.machines.length ?? 0;
    if (state) {
      const runtime = await loadRuntime(state.runtime);
      await progress.step(`stop ${recorded} machines of fleet ${state.fleet}`, () =>
        runtime.down(state, runtimeContext(projectDir, progress), { force: request.force, timeoutMs: request.timeoutMs }),
      );
    }
    if (!request.force) return recorded;
    const { stopLostMachines } = await import('../runtimes/process-groups.js');
    const lost = await progress.step('stop what else of this project runs, recorded or not', () => stopLostMachines(projectDir, request.timeoutMs));
    return recorded + lost;
  });
}
