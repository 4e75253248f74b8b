/**
 * `uproxy logs --since`: the forms `docker compose logs --since` takes. A duration counts back
 * from `now` (10m, 1h30m, 1.5h, 2d, 500ms); an RFC 3339 time (2026-01-31T09:00:00Z, with an
 * offset, fractional seconds, or none: then local time, as docker reads it; a date alone is
 * local midnight); Unix seconds (1769850000, 1769850000.5).
 */
import { parseDateTime, parseDuration } from '../time-input.js';

const UNIX_SECONDS = /^\d{9,}(?:\.\d+)?$/;

const SINCE_FORMS = 'a duration (10m, 1h30m, 2d), an RFC 3339 time (2026-01-31T09:00:00Z; no zone: local time) or Unix seconds';

/** Milliseconds since the epoch from which lines are shown; throws RangeError naming the accepted forms. */
export function parseSince(text: string, now: number): number {
  const value = text.trim();
  const duration = parseDuration(value);
  if (duration !== null) return now - duration;
  if (UNIX_SECONDS.test(value)) return Math.round(Number(value) * 1000);
  const time = parseDateTime(value);
  if (time !== null) return time;
  throw new RangeError(`expected ${SINCE_FORMS}, got "${text}"`);
}
