import { Box, Text } from 'ink';
import type { BackendRates } from '../stats/rates.js';
import type { BackendState, BackendStats } from '../stats/schema.js';
import { bar, fit, formatCount, formatLatency, formatRate } from './format.js';
import { SectionTitle } from './SectionTitle.js';

export const SORT_KEYS = ['name', 'req/s', 'p99', 'errors', 'state'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

const STATE_COLOR: Record<BackendState, string> = { up: 'green', down: 'red', draining: 'yellow' };
const STATE_ORDER: Record<BackendState, number> = { down: 0, draining: 1, up: 2 };

/** The backends in display order: busiest, slowest, most failing or sickest first; names break ties. */
export function sortBackends(
  backends: readonly BackendStats[],
  rates: Readonly<Record<string, BackendRates>>,
  key: SortKey,
): BackendStats[] {
  const measure = (b: BackendStats): number => {
    switch (key) {
      case 'name':
        return 0;
      case 'req/s':
        return -(rates[b.name]?.requestsPerSec ?? -1);
      case 'p99':
        return -b.latency_ms.p99;
      case 'errors':
        return -b.errors;
      case 'state':
        return STATE_ORDER[b.state];
    }
  };
  return [...backends].sort((x, y) => measure(x) - measure(y) || x.name.localeCompare(y.name, 'en', { numeric: true }));
}

interface Layout {
  name: number;
  address: number;
  bar: number;
  /** p50 and p99 in their own columns (wide terminals) or as one `p50/p99` column. */
  splitLatency: boolean;
  /** A restarts column, where a supervisor keeps count (the restart policy). */
  restarts: boolean;
}

/** Column widths for a terminal `width` wide: the share bar and the name take what is left. */
export function layoutFor(width: number, backends: readonly BackendStats[], restarts = false): Layout {
  const splitLatency = width >= 100;
  const longestName = Math.max(4, ...backends.map((b) => b.name.length));
  const longestAddress = Math.max(7, ...backends.map((b) => b.address.length));
  // selector 2, state 9, req/s 8, share 5, in-flight 5, errors 7, restarts 5, latency 9+9 or 12
  const fixed = 2 + 9 + 8 + 5 + 5 + 7 + (restarts ? 5 : 0) + (splitLatency ? 18 : 12);
  const address = Math.min(longestAddress + 1, 22);
  let name = Math.min(longestName + 1, 11);
  let barWidth = width - 1 - fixed - address - name;
  if (barWidth > 30) {
    const spare = barWidth - 30;
    const grow = Math.min(spare, Math.min(longestName + 1, 32) - name);
    name += Math.max(0, grow);
    barWidth -= Math.max(0, grow);
  }
  return { name, address, bar: Math.max(3, Math.min(40, barWidth)), splitLatency, restarts };
}

export interface BackendsTableProps {
  backends: readonly BackendStats[];
  rates: Readonly<Record<string, BackendRates>> | undefined;
  /** Restarts of each backend's machine by its supervisor; absent where none keeps count. */
  restarts?: Readonly<Record<string, number>>;
  sort: SortKey;
  selected: string | undefined;
  width: number;
  /** Rows available for backends; the table scrolls to keep the selected one in view. */
  maxRows: number;
}

export function BackendsTable({ backends, rates, restarts, sort, selected, width, maxRows }: BackendsTableProps) {
  const rows = sortBackends(backends, rates ?? {}, sort);
  const layout = layoutFor(width, backends, restarts !== undefined);
  const visible = Math.max(1, maxRows);
  const selectedIndex = Math.max(0, rows.findIndex((b) => b.name === selected));
  const first = Math.min(Math.max(0, selectedIndex - visible + 1), Math.max(0, rows.length - visible));
  const shown = rows.slice(first, first + visible);
  const hidden = rows.length - shown.length;
  const counts = (['up', 'draining', 'down'] as const)
    .map((s) => [s, backends.filter((b) => b.state === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  return (
    <Box flexDirection="column">
      <SectionTitle
        title={`Backends (${backends.length}${counts ? `: ${counts}` : ''})`}
        width={width}
        note={`sort: ${sort}${hidden > 0 ? `  ${first + 1}-${first + shown.length} of ${rows.length}` : ''}`}
      />
      <Text wrap="truncate" dimColor>
        {'  '}
        {fit('NAME', layout.name)}
        {fit('ADDRESS', layout.address)}
        {fit('STATE', 9)}
        {fit('REQ/S', 7, 'right')} {fit('SHARE', 5 + layout.bar)}
        {fit('INFL', 5, 'right')}
        {layout.splitLatency ? `${fit('P50 ms', 9, 'right')}${fit('P99 ms', 9, 'right')}` : fit('P50/P99 ms', 12, 'right')}
        {fit('ERRORS', 7, 'right')}
        {layout.restarts ? fit('RST', 5, 'right') : null}
      </Text>
      {rows.length === 0 ? <Text dimColor>  no backends</Text> : null}
      {shown.map((b) => (
        <BackendRow key={b.name} backend={b} rates={rates?.[b.name]} restarts={restarts?.[b.name]} layout={layout} selected={b.name === selected} />
      ))}
    </Box>
  );
}

function BackendRow({
  backend: b,
  rates,
  restarts,
  layout,
  selected,
}: {
  backend: BackendStats;
  rates: BackendRates | undefined;
  restarts: number | undefined;
  layout: Layout;
  selected: boolean;
}) {
  const share = rates?.share ?? null;
  const shareBar = bar(share ?? 0, layout.bar);
  // A backend no request has reached has no latency; 0.0 would claim it is instant.
  const idle = b.requests === 0 && b.errors === 0;
  const p50 = idle ? '—' : formatLatency(b.latency_ms.p50);
  const p99 = idle ? '—' : formatLatency(b.latency_ms.p99);
  const latency = layout.splitLatency ? `${fit(p50, 9, 'right')}${fit(p99, 9, 'right')}` : fit(`${p50}/${p99}`, 12, 'right');
  return (
    <Text wrap="truncate" inverse={selected}>
      {selected ? '› ' : '  '}
      <Text bold={selected}>{fit(b.name, layout.name)}</Text>
      {fit(b.address, layout.address)}
      <Text color={STATE_COLOR[b.state]} bold>{fit(b.state, 9)}</Text>
      {fit(formatRate(rates?.requestsPerSec ?? null), 7, 'right')}{' '}
      {fit(share === null ? '—' : `${Math.round(share * 100)}%`, 4, 'right')}{' '}
      <Text color="cyan">{shareBar.filled}</Text>
      <Text dimColor>{shareBar.empty}</Text>
      {fit(String(b.in_flight), 5, 'right')}
      {latency}
      <Text color={b.errors > 0 ? 'red' : undefined}>{fit(formatCount(b.errors), 7, 'right')}</Text>
      {layout.restarts ? <Text color={restarts ? 'yellow' : undefined}>{fit(restarts === undefined ? '—' : formatCount(restarts), 5, 'right')}</Text> : null}
    </Text>
  );
}

/** Title and column header. */
export const BACKENDS_TABLE_CHROME = 2;
