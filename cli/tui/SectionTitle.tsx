import { Text } from 'ink';

/** `── Title ─────── note` across the full width: a panel border that costs one line. */
export function SectionTitle({ title, width, note }: { title: string; width: number; note?: string | undefined }) {
  const head = `── ${title} `;
  const tail = note ? ` ${note} ──` : '';
  const rule = '─'.repeat(Math.max(0, width - head.length - tail.length));
  return (
    <Text wrap="truncate" dimColor>
      ── <Text bold color="white">{title}</Text> {rule}
      {tail}
    </Text>
  );
}
