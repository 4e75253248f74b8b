import { Box, Text } from 'ink';
import { formatClock, formatDuration, formatRate } from './format.js';
import type { FleetInfo } from '../core/status.js';
import type { PollState } from './poller.js';

export interface HeaderProps {
  fleet: FleetInfo;
  intervalMs: number;
  state: PollState;
  nowEpochMs: number;
}

/** Two lines: who we watch, then whether the proxy answers (three while it does not). */
export function Header({ fleet, intervalMs, state, nowEpochMs }: HeaderProps) {
  const stats = state.series?.latest.stats;
  const rates = state.series?.rates;
  const down = state.unreachable;
  // Days left on the certificate an HTTPS proxy serves; yellow once `up` would renew a 30-day one.
  const served = stats?.tls?.enabled ? stats.tls.certificates[0] : undefined;
  const certificate = served === undefined ? undefined : { days: Math.max(0, Math.floor((served.not_after * 1000 - nowEpochMs) / 86_400_000)), issuer: served.issuer };
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Text bold color="cyan">uproxy</Text> <Text bold>{fleet.name}</Text>
        <Text dimColor> ({fleet.runtime})</Text>  proxy <Text bold>{fleet.tls ? `https://${fleet.proxyAddress}` : fleet.proxyAddress}</Text>
        {stats ? `  up ${formatDuration(stats.uptime_ms)}  ${stats.algorithm}` : ''}
        <Text dimColor>  every {intervalMs >= 1000 ? `${+(intervalMs / 1000).toFixed(1)}s` : `${intervalMs}ms`}</Text>
      </Text>
      {down ? (
        <>
          <Text wrap="truncate" color="red" bold>
            ✗ proxy unreachable since {formatClock(down.sinceEpochMs)} ({formatDuration(nowEpochMs - down.sinceEpochMs)}), retrying every{' '}
            {formatDuration(down.retryInMs)}
          </Text>
          <Text wrap="truncate-middle" color="red">  last error: {down.lastError}</Text>
        </>
      ) : stats ? (
        <Text wrap="truncate">
          <Text color="green">● live</Text>
          {rates?.restarted ? <Text color="yellow" bold>  proxy restarted: counters reset</Text> : null}
          {`  ${rates ? `${formatRate(rates.requestsPerSec)} req/s` : 'measuring…'}  ${stats.connections.active} conn`}
          {`  ${stats.requests.in_flight} in flight  pid ${stats.pid}  v${stats.version}`}
          {state.restarts?.proxy ? <Text color="yellow">{`  restarted ${state.restarts.proxy}×`}</Text> : null}
          {certificate === undefined ? null : <Text color={certificate.days < 10 ? 'yellow' : undefined}>{`  cert ${certificate.days}d left${certificate.issuer ? ` (${certificate.issuer})` : ''}`}</Text>}
        </Text>
      ) : (
        <Text dimColor>connecting…</Text>
      )}
    </Box>
  );
}

/** Lines the header takes for this state, so the table knows what room is left. */
export function headerHeight(state: PollState): number {
  return state.unreachable ? 3 : 2;
}
