import { readToken } from '../config/tokens.js';
import { removeState, writeState } from '../fleet/state.js';
import type { Progress } from '../progress.js';
import type { RuntimeContext } from '../runtimes/runtime.js';

export function runtimeContext(projectDir: string, progress: Progress): RuntimeContext {
  return {
    projectDir,
    progress,
    saveState: (state) => writeState(projectDir, state),
    clearState: () => removeState(projectDir),
    adminToken: () => readToken(projectDir, 'admin'),
  };
}
