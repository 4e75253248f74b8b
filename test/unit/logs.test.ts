import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { logFile, printLog } from '../../cli/core/logs.js';

const dir = mkdtempSync(join(tmpdir(), 'uproxy-logs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { stream, text: () => text };
}

describe('uproxy logs', () => {
  it('names the machines it knows when asked for one without a log', () => {
    expect(() => logFile(dir, 'backend-9')).toThrow(/no log for "backend-9".*not running/);
  });

  it('prints a log, and with --follow what is appended until stopped', async () => {
    const file = join(dir, 'proxy.log');
    writeFileSync(file, 'first\n');
    const once = collect();
    await printLog(file, once.stream, false);
    expect(once.text()).toBe('first\n');

    const followed = collect();
    const stop = new AbortController();
    const done = printLog(file, followed.stream, true, stop.signal);
    appendFileSync(file, 'second\n');
    const deadline = Date.now() + 10_000;
    while (!followed.text().includes('second') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    await done;
    expect(followed.text()).toBe('first\nsecond\n');
  });
});
