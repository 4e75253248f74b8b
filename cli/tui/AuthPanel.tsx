import { Box, Text } from 'ink';
import { HISTORY_WINDOW_MS, type StatsSeries } from '../stats/rates.js';
import { fit, formatCount, formatRate, sparkline } from './format.js';
import { SectionTitle } from './SectionTitle.js';

export interface AuthPanelProps {
  series: StatsSeries | undefined;
  width: number;
  /** Sampling interval: a sparkline gets no more cells than there are samples in its window. */
  intervalMs: number;
}

const LABEL = 10;
const RATE = 9;
const TOTAL = 18;

/** Accepted and denied requests: rates over the last interval, totals, per token, 60 s sparklines. */
export function AuthPanel({ series, width, intervalMs }: AuthPanelProps) {
  const auth = series?.latest.stats.auth;
  const rates = series?.rates?.auth ?? null;
  const endMs = series?.latest.atMs ?? 0;
  const sparkWidth = Math.max(0, Math.min(width - LABEL - RATE - TOTAL - 12, Math.floor(HISTORY_WINDOW_MS / intervalMs)));
  const spark = (pick: 'acceptedPerSec' | 'deniedPerSec') =>
    sparkline(
      (series?.history ?? []).map((p) => ({ atMs: p.atMs, value: p[pick] })),
      sparkWidth,
      endMs,
      HISTORY_WINDOW_MS,
    );
  const accepted = spark('acceptedPerSec');
  const denied = spark('deniedPerSec');
  const rate = (r: number | undefined) => fit(`${formatRate(r ?? null)}/s`, RATE, 'right');
  const total = (n: number | undefined) => fit(n === undefined ? '' : `total ${formatCount(n)}`, TOTAL, 'right');
  const tokens = Object.entries(auth?.by_token ?? {})
    .map(([name, count]) => ({ name, count, perSec: rates?.byToken[name] ?? null }))
    .sort((x, y) => (y.perSec ?? 0) - (x.perSec ?? 0) || y.count - x.count);
  return (
    <Box flexDirection="column">
      <SectionTitle title="Auth" width={width} note={sparkWidth > 0 ? 'last 60 s' : undefined} />
      <Text wrap="truncate">
        {fit(' accepted', LABEL)}
        <Text color="green" bold>{rate(rates?.acceptedPerSec)}</Text>
        {total(auth?.accepted)}  <Text color="green">{accepted.line}</Text>
        <Text dimColor> {sparkWidth > 0 ? `max ${formatRate(accepted.peak)}` : ''}</Text>
      </Text>
      <Text wrap="truncate">
        {fit(' denied', LABEL)}
        <Text color={rates && rates.deniedPerSec > 0 ? 'red' : undefined} bold>{rate(rates?.deniedPerSec)}</Text>
        {total(auth ? auth.denied.missing + auth.denied.invalid : undefined)}  <Text color="red">{denied.line}</Text>
        <Text dimColor> {sparkWidth > 0 ? `max ${formatRate(denied.peak)}` : ''}</Text>
      </Text>
      <Text wrap="truncate" dimColor>
        {fit('  missing', LABEL)}
        {rate(rates?.missingPerSec)}
        {total(auth?.denied.missing)}
      </Text>
      <Text wrap="truncate" dimColor>
        {fit('  invalid', LABEL)}
        {rate(rates?.invalidPerSec)}
        {total(auth?.denied.invalid)}
      </Text>
      <Text wrap="truncate">
        {fit(' tokens', LABEL)}
        {tokens.length === 0 ? <Text dimColor>none used yet</Text> : null}
        {tokens.map((t, i) => (
          <Text key={t.name}>
            {i > 0 ? '  ' : ''}
            <Text bold>{t.name}</Text> {formatRate(t.perSec)}/s
          </Text>
        ))}
      </Text>
    </Box>
  );
}

export const AUTH_PANEL_HEIGHT = 6;
