import { describe, expect, it } from 'vitest';
import { parseExpiry } from '../../cli/core/tokens.js';

/** `uproxy token add --expires`: forward from now, or a date; always RFC 3339 UTC to the second. */
describe('parseExpiry', () => {
  const now = Date.parse('2026-06-01T12:00:00.250Z');
  it('counts a duration forward from now, rounded up to the second', () => {
    expect(parseExpiry('30d', now)).toBe('2026-07-01T12:00:01Z');
    expect(parseExpiry('1h30m', now)).toBe('2026-06-01T13:30:01Z');
    expect(parseExpiry('2w', now)).toBe('2026-06-15T12:00:01Z');
    expect(parseExpiry('90s', now)).toBe('2026-06-01T12:01:31Z');
  });
  it('takes a date with a zone as given, and one without as local time', () => {
    expect(parseExpiry('2026-12-31T18:00:00Z', now)).toBe('2026-12-31T18:00:00Z');
    expect(parseExpiry('2026-12-31T18:00:00+02:00', now)).toBe('2026-12-31T16:00:00Z');
    expect(parseExpiry('2026-12-31', now)).toBe(new Date(2026, 11, 31).toISOString().replace('.000Z', 'Z'));
  });
  it('refuses what is not a time, a day that does not exist, and the past', () => {
    expect(() => parseExpiry('soon', now)).toThrow(/expected a duration from now \(30d, 12h, 1h30m\) or a date/);
    expect(() => parseExpiry('2026-02-30', now)).toThrow(/expected a duration/);
    expect(() => parseExpiry('2026-06-01T25:00', now)).toThrow(/expected a duration/);
    expect(() => parseExpiry('2026-01-01', now)).toThrow(/is already past/);
    expect(() => parseExpiry('0s', now)).toThrow(/is already past/);
  });
});
