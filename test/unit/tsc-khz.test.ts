import { describe, expect, it } from 'vitest';
import { hostTscKhz } from '../../cli/runtimes/qemu.js';

/** The TSC rate handed to microvm guests under TCG (tsc_early_khz). */
describe('hostTscKhz', () => {
  const files = (contents: Record<string, string>) => (path: string): string => {
    const text = contents[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return text;
  };
  const cpuinfo = 'processor\t: 0\ncpu MHz\t\t: 1197.843\n';

  it("prefers the kernel's measured TSC rate over the current core clock", () => {
    expect(hostTscKhz(files({ '/sys/devices/system/cpu/cpu0/tsc_freq_khz': '2995200\n', '/proc/cpuinfo': cpuinfo }))).toBe(2995200);
  });

  it('falls back to cpu MHz when the kernel exports no TSC rate, and to nothing when neither is readable', () => {
    expect(hostTscKhz(files({ '/proc/cpuinfo': cpuinfo }))).toBe(1197843);
    expect(hostTscKhz(files({ '/sys/devices/system/cpu/cpu0/tsc_freq_khz': 'garbage', '/proc/cpuinfo': cpuinfo }))).toBe(1197843);
    expect(hostTscKhz(files({}))).toBeUndefined();
  });
});
