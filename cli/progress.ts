/**
 * How long-running work (`up`, `down`) reports its steps. The core calls `step` around each
 * unit of work; the command picks an implementation (plain lines, or the Ink view when a TTY).
 */
export interface Progress {
  /** Runs `work` as a named step; on failure the step is shown failed with the tail of its log. */
  step<T>(title: string, work: () => Promise<T>): Promise<T>;
  /** A line of output from the current step (a build log line, say). */
  log(line: string): void;
}

/** A Progress the command owns: it closes it when the work is over. */
export interface ProgressSession extends Progress {
  close(): Promise<void>;
}

export interface ProgressOptions {
  /** Where the lines go; stderr, so stdout stays the command's result. */
  stream?: NodeJS.WritableStream;
  /** Show the output of each step (build logs); off by default, a failure shows its tail anyway. */
  verbose?: boolean;
}

/**
 * The Progress a command should use. Asynchronous so that a richer view (Ink, on a TTY) can be
 * imported on demand without slowing down commands that never show progress.
 */
export async function createProgress(options: ProgressOptions = {}): Promise<ProgressSession> {
  const stream = options.stream ?? process.stderr;
  const verbose = options.verbose ?? false;
  // On a terminal, spinners and durations drawn by Ink; --verbose wants every log line, so plain.
  if ((stream as NodeJS.WriteStream).isTTY && !verbose) {
    const { InkProgress } = await import('./tui/ink-progress.js');
    return new InkProgress(stream as NodeJS.WriteStream);
  }
  return new PlainProgress(stream, verbose);
}

/** One line per step once it ends (✓ or ✗), with its duration: fit for logs and CI. */
export class PlainProgress implements ProgressSession {
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly verbose: boolean,
  ) {}

  async step<T>(title: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await work();
      this.stream.write(`✓ ${title} (${formatDuration(performance.now() - started)})\n`);
      return result;
    } catch (error) {
      this.stream.write(`✗ ${title} (${formatDuration(performance.now() - started)})\n`);
      throw error;
    }
  }

  log(line: string): void {
    if (this.verbose) this.stream.write(`  │ ${line}\n`);
  }

  async close(): Promise<void> {}
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** For work done where nothing is shown (`ps`, `token`): steps run, nothing is printed. */
export const SILENT: Progress = { step: (_title, work) => work(), log: () => {} };
