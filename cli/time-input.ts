/**
 * Times as people type them on the command line (`logs --since`, `token add --expires`): a
 * duration (10m, 1h30m, 1.5h, 2d, 1w, 500ms) or a date with an optional time (2026-01-31,
 * 2026-01-31T09:00:00Z, with an offset or fractional seconds; without a zone, local time, as
 * docker and a person typing a date read it).
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?)?$/;

/** A duration in milliseconds, or null when `text` is not one. */
export function parseDuration(text: string): number | null {
  const value = text.trim();
  if (!DURATION.test(value)) return null;
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(DURATION_PART)) ms += Number(amount) * UNIT_MS[unit!]!;
  return ms;
}

/** A date and time in milliseconds since the epoch, or null when `text` is not one. */
export function parseDateTime(text: string): number | null {
  const date = DATE_TIME.exec(text.trim());
  if (!date) return null;
  const [, year, month, day, hour = '00', minute = '00', second = '00', fraction = '', zone] = date;
  // Date.parse reads a date-time without a zone as local time, and one with Z or ±hh:mm as given.
  const ms = Date.parse(`${year}-${month}-${day}T${hour}:${minute}:${second}${fraction.slice(0, 4)}${zone?.toUpperCase() ?? ''}`);
  return Number.isFinite(ms) && validFields(Number(year), Number(month), Number(day), Number(hour), Number(minute), Number(second)) ? ms : null;
}

/** Date.parse rolls 2026-02-30 over to March and takes 24:00; a field out of range is a typo, not a time. */
function validFields(year: number, month: number, day: number, hour: number, minute: number, second: number): boolean {
  const calendar = new Date(Date.UTC(year, month - 1, day));
  return calendar.getUTCMonth() === month - 1 && calendar.getUTCDate() === day && hour <= 23 && minute <= 59 && second <= 59;
}
