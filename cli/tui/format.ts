/** Text formatting shared by the views: every function is pure and width-aware. */

/** A per-second rate in at most 6 characters: `0`, `7.5`, `812`, `12.3k`, `1.2M`. */
export function formatRate(perSec: number | null): string {
  if (perSec === null) return '—';
  if (perSec === 0) return '0';
  if (perSec < 10) return perSec.toFixed(1);
  if (perSec < 10_000) return perSec.toFixed(0);
  if (perSec < 10_000_000) return `${(perSec / 1000).toFixed(1)}k`;
  return `${(perSec / 1_000_000).toFixed(1)}M`;
}

const thousands = new Intl.NumberFormat('en-US');

/** A cumulative count with thousands separators. */
export function formatCount(n: number): string {
  return thousands.format(n);
}

/** Milliseconds of latency: `0.4`, `12`, `1.2s`. */
export function formatLatency(ms: number): string {
  if (ms < 10) return ms.toFixed(1);
  if (ms < 1000) return ms.toFixed(0);
  return `${(ms / 1000).toFixed(1)}s`;
}

/** A duration the way `uptime` would say it, coarsest two units: `45s`, `12m03s`, `3h04m`, `2d03h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

/** A step's duration with a tenth of a second: `0.4s`, `12.0s`, `2m03s`. */
export function formatStepDuration(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : formatDuration(ms);
}

/** Wall-clock time of day, `HH:MM:SS`, in the local zone. */
export function formatClock(epochMs: number): string {
  const d = new Date(epochMs);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** Pads or cuts `text` to exactly `width` columns (an ellipsis marks a cut). */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return '';
  if (text.length > width) return width === 1 ? '…' : `${text.slice(0, width - 1)}…`;
  return align === 'left' ? text.padEnd(width) : text.padStart(width);
}

/** A horizontal bar of `width` cells, `fraction` (0..1) of them filled. */
export function bar(fraction: number, width: number): { filled: string; empty: string } {
  const n = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return { filled: '█'.repeat(n), empty: '░'.repeat(width - n) };
}

const LEVELS = '▁▂▃▄▅▆▇█';

/**
 * A sparkline of `width` cells covering the `windowMs` before `endMs`: each cell shows the
 * highest value of the points that fall in its slice of time, scaled to the highest value
 * overall; a cell with no point stays blank, so gaps (an unreachable proxy) show as gaps.
 */
export function sparkline(
  points: readonly { atMs: number; value: number }[],
  width: number,
  endMs: number,
  windowMs: number,
): { line: string; peak: number } {
  if (width <= 0) return { line: '', peak: 0 };
  const cells: (number | null)[] = new Array<number | null>(width).fill(null);
  const start = endMs - windowMs;
  for (const p of points) {
    if (p.atMs <= start || p.atMs > endMs) continue;
    const i = Math.min(width - 1, Math.floor(((p.atMs - start) / windowMs) * width));
    cells[i] = Math.max(cells[i] ?? 0, p.value);
  }
  const peak = Math.max(0, ...cells.map((c) => c ?? 0));
  const line = cells
    .map((c) => {
      if (c === null) return ' ';
      if (peak === 0) return LEVELS[0];
      return LEVELS[Math.min(LEVELS.length - 1, Math.floor((c / peak) * (LEVELS.length - 1) + 0.5))];
    })
    .join('');
  return { line, peak };
}
