/**
 * `uproxy logs --since`: the forms `docker compose logs --since` takes. A duration counts back
 * from `now` (10m, 1h30m, 1.5h, 2d, 500ms); an RFC 3339 time (2026-01-31T09:00:00Z, with an
 * offset, fractional seconds, or none: then local time, as docker reads it; a date alone is
 * local midnight); Unix seconds (1769850000, 1769850000.5).
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?)?$/;
const UNIX_SECONDS = /^\d{9,}(?:\.\d+)?$/;

const SINCE_FORMS = 'a duration (10m, 1h30m, 2d), an RFC 3339 time (2026-01-31T09:00:00Z; no zone: local time) or Unix seconds';

/** Milliseconds since the epoch from which lines are shown; throws RangeError naming the accepted forms. */
export function parseSince(text: string, now: number): number {
  const value = text.trim();
  if (DURATION.test(value)) {
    let ms = 0;
    for (const [, amount, unit] of value.matchAll(DURATION_PART)) ms += Number(amount) * UNIT_MS[unit!]!;
    return now - ms;
  }
  if (UNIX_SECONDS.test(value)) return Math.round(Number(value) * 1000);
  const date = DATE_TIME.exec(value);
  if (date) {
    const [, year, month, day, hour = '00', minute = '00', second = '00', fraction = '', zone] = date;
    // Date.parse reads a date-time without a zone as local time, and one with Z or ±hh:mm as given.
    const ms = Date.parse(`${year}-${month}-${day}T${hour}:${minute}:${second}${fraction.slice(0, 4)}${zone?.toUpperCase() ?? ''}`);
    if (Number.isFinite(ms) && validFields(Number(year), Number(month), Number(day), Number(hour), Number(minute), Number(second))) return ms;
  }
  throw new RangeError(`expected ${SINCE_FORMS}, got "${text}"`);
}

/** Date.parse rolls 2026-02-30 over to March and takes 24:00; a field out of range is a typo, not a time. */
function validFields(year: number, month: number, day: number, hour: number, minute: number, second: number): boolean {
  const calendar = new Date(Date.UTC(year, month - 1, day));
  return calendar.getUTCMonth() === month - 1 && calendar.getUTCDate() === day && hour <= 23 && minute <= 59 && second <= 59;
}
