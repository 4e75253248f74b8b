import { Box, useApp, useInput, useStdout } from 'ink';
import { useEffect, useRef, useState } from 'react';
import type { BackendStats } from '../stats/schema.js';
import { AUTH_PANEL_HEIGHT, AuthPanel } from './AuthPanel.js';
import { BACKENDS_TABLE_CHROME, BackendsTable, SORT_KEYS, sortBackends, type SortKey } from './BackendsTable.js';
import { Footer, FOOTER_HEIGHT, Help } from './Footer.js';
import type { DrainOutcome, FleetInfo } from '../core/status.js';
import { Header, headerHeight } from './Header.js';
import type { PollState } from './poller.js';

/** What asking the proxy to drain or undrain a backend came to. */
export interface StatusScreenProps {
  fleet: FleetInfo;
  intervalMs: number;
  state: PollState;
  nowEpochMs: number;
  width: number;
  /** Lines available; the screen uses fewer, so the terminal never scrolls (which flickers). */
  height: number;
  sort: SortKey;
  selected: string | undefined;
  /** Absent in a one-shot snapshot, which has no keys. */
  footer?: { message: string | undefined; drainAvailable: boolean; help: boolean };
}

/** The whole screen for one moment; it holds no state, so a snapshot renders it as is. */
export function StatusScreen(props: StatusScreenProps) {
  const { state, width, footer } = props;
  const backends = state.series?.latest.stats.backends ?? [];
  const used = headerHeight(state) + AUTH_PANEL_HEIGHT + BACKENDS_TABLE_CHROME + (footer ? FOOTER_HEIGHT : 0) + 1;
  const maxRows = footer ? props.height - used : backends.length;
  return (
    <Box flexDirection="column" width={width}>
      <Header fleet={props.fleet} intervalMs={props.intervalMs} state={state} nowEpochMs={props.nowEpochMs} />
      {footer?.help ? (
        <Help />
      ) : (
        <>
          <AuthPanel series={state.series} width={width} intervalMs={props.intervalMs} />
          <BackendsTable
            backends={backends}
            rates={state.series?.rates?.backends}
            restarts={state.restarts}
            sort={props.sort}
            selected={props.selected}
            width={width}
            maxRows={maxRows}
          />
        </>
      )}
      {footer ? <Footer message={footer.message} drainAvailable={footer.drainAvailable} /> : null}
    </Box>
  );
}

export interface StatusProps {
  fleet: FleetInfo;
  intervalMs: number;
  state: PollState;
  /** Drains (`drain` true) or undrains a backend through the admin API. */
  onDrain: (name: string, drain: boolean) => Promise<DrainOutcome>;
  /** Fixed clock for tests; the wall clock otherwise. */
  nowEpochMs?: number;
}

/** The live, interactive screen: the keys of the footer act on a StatusScreen. */
export function Status({ fleet, intervalMs, state, onDrain, nowEpochMs }: StatusProps) {
  const { exit } = useApp();
  const size = useTerminalSize();
  const [sort, setSort] = useState<SortKey>('name');
  const [selectedName, setSelected] = useState<string | undefined>();
  const [help, setHelp] = useState(false);
  const [message, setMessage] = useState<string | undefined>();
  const [drainAvailable, setDrainAvailable] = useState(true);
  // Keys can arrive faster than renders; the ref stops a second `d` while one is on its way.
  const drainBusy = useRef(false);

  const rows = sortBackends(state.series?.latest.stats.backends ?? [], state.series?.rates?.backends ?? {}, sort);
  const selectedIndex = Math.max(0, rows.findIndex((b) => b.name === selectedName));
  const selected: BackendStats | undefined = rows[selectedIndex];

  const toggleDrain = async (backend: BackendStats) => {
    const drain = backend.state !== 'draining';
    setMessage(`${drain ? 'draining' : 'undraining'} ${backend.name}…`);
    drainBusy.current = true;
    const outcome = await onDrain(backend.name, drain).finally(() => (drainBusy.current = false));
    if (outcome.kind === 'unavailable') {
      setDrainAvailable(false);
      setMessage('drain not available in this proxy');
    } else if (outcome.kind === 'failed') {
      setMessage(`${drain ? 'drain' : 'undrain'} ${backend.name} failed: ${outcome.message}`);
    } else {
      setMessage(`${backend.name} ${drain ? 'is draining: no new requests' : 'takes requests again'}`);
    }
  };

  // Ink re-attaches the key handler only after a render's effects run; reading what is on
  // screen through a ref (updated at render) keeps a key typed just after a redraw from
  // acting on the screen before it.
  const shown = useRef({ help, drainAvailable, selected });
  shown.current = { help, drainAvailable, selected };

  useInput((input, key) => {
    const now = shown.current;
    if (input === 'q') return exit();
    if (now.help) return setHelp(false);
    if (input === '?') return setHelp(true);
    if (input === 's') return setSort((current) => SORT_KEYS[(SORT_KEYS.indexOf(current) + 1) % SORT_KEYS.length]!);
    if (key.upArrow || key.downArrow) {
      return setSelected((current) => {
        const at = Math.max(0, rows.findIndex((b) => b.name === (current ?? now.selected?.name)));
        return rows[Math.min(rows.length - 1, Math.max(0, at + (key.upArrow ? -1 : 1)))]?.name;
      });
    }
    if (input === 'd' && !drainBusy.current) {
      if (!now.drainAvailable) return setMessage('drain not available in this proxy');
      if (now.selected) void toggleDrain(now.selected);
    }
  });

  return (
    <StatusScreen
      fleet={fleet}
      intervalMs={intervalMs}
      state={state}
      nowEpochMs={nowEpochMs ?? Date.now()}
      width={size.columns}
      height={size.rows}
      sort={sort}
      selected={selected?.name}
      footer={{ message, drainAvailable, help }}
    />
  );
}

/** The terminal's size, following resizes. */
function useTerminalSize(): { columns: number; rows: number } {
  const { stdout } = useStdout();
  const read = () => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const onResize = () => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout]);
  return size;
}
