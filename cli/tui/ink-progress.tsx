import { render, type Instance } from 'ink';
import { UserError } from '../errors.js';
import type { ProgressSession } from '../progress.js';
import { ProgressView, type StepView } from './Progress.js';

const LOG_TAIL_LINES = 12;

function hasDetails(error: unknown): boolean {
  return error instanceof UserError && error.details.length > 0;
}

/**
 * Progress on a terminal, drawn by Ink. It is mounted only while a step runs: when the last
 * running step ends, the final frame is left on screen as plain text and Ink lets go, so the
 * command can print freely between and after its steps.
 */
export class InkProgress implements ProgressSession {
  private steps: StepView[] = [];
  private instance: Instance | undefined;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  async step<T>(title: string, work: () => Promise<T>): Promise<T> {
    const step: StepView = { title, status: 'running', startedMs: performance.now(), logTail: [] };
    this.steps.push(step);
    this.draw();
    try {
      const result = await work();
      this.finish(step, 'done');
      return result;
    } catch (error) {
      // An error with details (a UserError with the tail of the failed build's log, say) has
      // them printed under its message by the command line: showing the step's own tail too
      // would print the same lines twice.
      if (hasDetails(error)) step.logTail = [];
      this.finish(step, 'failed');
      throw error;
    }
  }

  log(line: string): void {
    const step = this.steps.findLast((s) => s.status === 'running');
    if (!step) return;
    step.logTail = [...step.logTail, line].slice(-LOG_TAIL_LINES);
    this.draw();
  }

  async close(): Promise<void> {
    this.release();
  }

  private finish(step: StepView, status: 'done' | 'failed'): void {
    step.status = status;
    step.durationMs = performance.now() - step.startedMs;
    this.draw();
    if (!this.steps.some((s) => s.status === 'running')) this.release();
  }

  private draw(): void {
    const view = <ProgressView steps={this.steps.map((s) => ({ ...s }))} />;
    if (this.instance) this.instance.rerender(view);
    else this.instance = render(view, { stdout: this.stream, exitOnCtrlC: false, patchConsole: false });
  }

  private release(): void {
    this.instance?.unmount();
    this.instance = undefined;
    this.steps = [];
  }
}
