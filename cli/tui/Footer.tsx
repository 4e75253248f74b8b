import { Box, Text } from 'ink';

export interface FooterProps {
  /** The result of the last action (a drain, say), shown above the keys. */
  message: string | undefined;
  /** False once the proxy answered that it has no drain route. */
  drainAvailable: boolean;
}

/** The keys, one line; `?` opens the longer help. */
export function Footer({ message, drainAvailable }: FooterProps) {
  return (
    <Box flexDirection="column">
      <Text wrap="truncate" color="yellow">{message ?? ' '}</Text>
      <Text wrap="truncate">
        <Key k="q" /> quit  <Key k="↑↓" /> select  <Key k="d" />{' '}
        {drainAvailable ? 'drain/undrain' : <Text dimColor>drain not available in this proxy</Text>}  <Key k="s" /> sort  <Key k="?" /> help
      </Text>
    </Box>
  );
}

function Key({ k }: { k: string }) {
  return (
    <Text bold color="cyan">
      {k}
    </Text>
  );
}

export const FOOTER_HEIGHT = 2;

/** The `?` screen: what each key does and what each column means. */
export function Help() {
  const lines: [string, string][] = [
    ['q, Ctrl-C', 'quit (the terminal is restored)'],
    ['↑ ↓', 'select a backend'],
    ['d', 'drain the selected backend (no new requests), or undrain it when draining'],
    ['s', 'sort by the next column: name, req/s, p99, errors, state'],
    ['?', 'show or hide this help'],
    ['', ''],
    ['REQ/S', 'requests forwarded per second over the last interval'],
    ['SHARE', "this backend's part of those requests; a skewed balance shows in the bars"],
    ['INFL', 'requests forwarded and not yet answered'],
    ['P50/P99', 'latency to response headers, recent window, milliseconds'],
    ['ERRORS', 'failed upstream attempts since the proxy started'],
    ['denied', 'requests refused for a missing, invalid or expired X-Auth-Token'],
  ];
  return (
    <Box flexDirection="column">
      {lines.map(([k, text], i) => (
        <Text key={i} wrap="truncate">
          <Text bold color="cyan">{k.padEnd(11)}</Text>
          {text}
        </Text>
      ))}
      <Text dimColor>press any key to go back</Text>
    </Box>
  );
}
