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
