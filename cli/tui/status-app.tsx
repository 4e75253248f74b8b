import { render, renderToString } from 'ink';
import { useEffect, useState } from 'react';
import type { StatsSeries } from '../stats/rates.js';
import type { ProxyStats } from '../stats/schema.js';
import type { DrainOutcome, FleetInfo } from '../core/status.js';
import { StatsPoller, type PollState } from './poller.js';
import { Status, StatusScreen } from './Status.js';

/**
 * Entry points of `uproxy status` that draw: the live screen and the one-shot text snapshot.
 * The command imports this module lazily, so Ink and React load only when something is drawn.
 */

export interface LiveStatusOptions {
  fleet: FleetInfo;
  intervalMs: number;
  fetch: () => Promise<ProxyStats>;
  restarts?: () => Promise<Readonly<Record<string, number>>>;
  drain: (name: string, drain: boolean) => Promise<DrainOutcome>;
}

/** Feeds the Status view from a StatsPoller; the view itself never fetches. */
export function LiveStatus({ fleet, intervalMs, fetch, restarts, drain }: LiveStatusOptions) {
  const [state, setState] = useState<PollState>({});
  const [, setTick] = useState(0);
  useEffect(() => {
    const poller = new StatsPoller({ fetch, restarts, intervalMs, onChange: setState });
    poller.start();
    return () => poller.stop();
  }, [fetch, restarts, intervalMs]);
  // While the proxy is away the poller backs off up to 15 s; "unreachable for Ns" still counts every second.
  const unreachable = state.unreachable !== undefined;
  useEffect(() => {
    if (!unreachable) return;
    const timer = setInterval(() => setTick((t) => t + 1), 1000);
    return () => clearInterval(timer);
  }, [unreachable]);
  return <Status fleet={fleet} intervalMs={intervalMs} state={state} onDrain={drain} />;
}

// The alternate screen keeps the operator's scrollback intact and is left on exit, like top or k9s.
const ENTER_ALTERNATE_SCREEN = '\x1b[?1049h';
const LEAVE_ALTERNATE_SCREEN = '\x1b[?1049l';

/** Runs the live screen on the terminal until `q` or Ctrl-C, then restores the terminal. */
export async function runLiveStatus(options: LiveStatusOptions): Promise<void> {
  const stdout = process.stdout;
  stdout.write(ENTER_ALTERNATE_SCREEN);
  const leave = () => stdout.write(LEAVE_ALTERNATE_SCREEN);
  process.once('exit', leave);
  const app = render(<LiveStatus {...options} />, { maxFps: 15, patchConsole: false });
  try {
    await app.waitUntilExit();
  } finally {
    process.off('exit', leave);
    leave();
  }
}

/** One screen of text for scripts and CI: colours only when stdout is a terminal. */
export function renderSnapshot(fleet: FleetInfo, intervalMs: number, series: StatsSeries, columns: number): string {
  return renderToString(
    <StatusScreen
      fleet={fleet}
      intervalMs={intervalMs}
      state={{ series }}
      nowEpochMs={Date.now()}
      width={columns}
      height={Number.MAX_SAFE_INTEGER}
      sort="name"
      selected={undefined}
    />,
    { columns },
  );
}
