import { Box, Text } from 'ink';
import { useEffect, useState } from 'react';
import { formatStepDuration } from './format.js';

export interface StepView {
  title: string;
  status: 'running' | 'done' | 'failed';
  startedMs: number;
  /** Set once the step ended. */
  durationMs?: number;
  /** The last lines the step logged; shown under a failed step, the newest under a running one. */
  logTail: readonly string[];
}

export interface ProgressViewProps {
  steps: readonly StepView[];
  /** Monotonic clock, for the running steps' durations. */
  nowMs?: () => number;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_MS = 100;
const TITLE_COLUMN = 44;

/** Each step with a spinner while it runs, its duration when over, and a failed step's log tail. */
export function ProgressView({ steps, nowMs = () => performance.now() }: ProgressViewProps) {
  const running = steps.some((s) => s.status === 'running');
  const [frame, setFrame] = useState(0);
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => setFrame((f) => f + 1), FRAME_MS);
    return () => clearInterval(timer);
  }, [running]);
  // A common minimum keeps durations in one column across steps drawn by separate mounts.
  const width = Math.max(...steps.map((s) => s.title.length), TITLE_COLUMN);
  return (
    <Box flexDirection="column">
      {steps.map((step, i) => (
        <Box key={i} flexDirection="column">
          <Text>
            {step.status === 'running' ? <Text color="cyan">{SPINNER[frame % SPINNER.length]}</Text> : null}
            {step.status === 'done' ? <Text color="green">✓</Text> : null}
            {step.status === 'failed' ? <Text color="red">✗</Text> : null} {step.title.padEnd(width)}{' '}
            <Text dimColor>{formatStepDuration(step.durationMs ?? nowMs() - step.startedMs)}</Text>
          </Text>
          {step.status === 'running' && step.logTail.length > 0 ? (
            <Text dimColor wrap="truncate">
              {'  '}
              {step.logTail[step.logTail.length - 1]}
            </Text>
          ) : null}
          {step.status === 'failed'
            ? step.logTail.map((line, j) => (
                <Text key={j} color="red" wrap="truncate">
                  {'  │ '}
                  {line}
                </Text>
              ))
            : null}
        </Box>
      ))}
    </Box>
  );
}
