import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { render } from 'ink-testing-library';
import { UserError } from '../../cli/errors.js';
import { PlainProgress } from '../../cli/progress.js';
import { InkProgress } from '../../cli/tui/ink-progress.js';
import { ProgressView } from '../../cli/tui/Progress.js';

const plain = (s: string) => s.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');

/** A terminal-like stream that keeps everything written to it. */
class Terminal extends Writable {
  text = '';
  readonly isTTY = true;
  readonly columns = 80;
  readonly rows = 24;
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

describe('ProgressView', () => {
  it('shows a spinner and the running time, a tick and the duration when done', () => {
    const { lastFrame } = render(
      <ProgressView
        nowMs={() => 5000}
        steps={[
          { title: 'build proxy', status: 'done', startedMs: 0, durationMs: 1234, logTail: [] },
          { title: 'start backend-1', status: 'running', startedMs: 4600, logTail: ['listening on 127.0.0.1:9001'] },
        ]}
      />,
    );
    const lines = plain(lastFrame() ?? '').split('\n');
    expect(lines[0]).toMatch(/^✓ build proxy\s+1\.2s$/);
    expect(lines[1]).toMatch(/^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] start backend-1\s+0\.4s$/);
    expect(lines[0]!.indexOf('1.2s')).toBe(lines[1]!.indexOf('0.4s'));
    expect(lines[2]).toBe('  listening on 127.0.0.1:9001');
  });

  it('shows a failed step with the tail of its log', () => {
    const { lastFrame } = render(
      <ProgressView steps={[{ title: 'wait for health', status: 'failed', startedMs: 0, durationMs: 30_000, logTail: ['backend-2: connection refused', 'gave up'] }]} />,
    );
    expect(plain(lastFrame() ?? '').split('\n')).toEqual([`✗ ${'wait for health'.padEnd(44)} 30.0s`, '  │ backend-2: connection refused', '  │ gave up']);
  });
});

describe('InkProgress', () => {
  it('leaves each finished step on the terminal with its duration', async () => {
    const terminal = new Terminal();
    const progress = new InkProgress(terminal as unknown as NodeJS.WriteStream);
    const built = await progress.step('build proxy', async () => {
      progress.log('cc -O2 -c main.c');
      await new Promise((r) => setTimeout(r, 150));
      return 'proxy.bin';
    });
    await progress.step('start backend-1', async () => {});
    await progress.close();
    expect(built).toBe('proxy.bin');
    const text = plain(terminal.text);
    expect(text).toMatch(/✓ build proxy\s+0\.[1-9]s/);
    expect(text).toMatch(/✓ start backend-1\s+0\.\ds/);
  });

  it('rethrows a failing step and shows it failed with the last lines of its log', async () => {
    const terminal = new Terminal();
    const progress = new InkProgress(terminal as unknown as NodeJS.WriteStream);
    const failing = progress.step('wait for health', async () => {
      for (let i = 1; i <= 20; i++) progress.log(`check ${i}: backend-2 down`);
      throw new Error('backend-2 never came up');
    });
    await expect(failing).rejects.toThrow('backend-2 never came up');
    await progress.close();
    const text = plain(terminal.text);
    expect(text).toMatch(/✗ wait for health/);
    expect(text).toContain('│ check 20: backend-2 down');
    expect(text).toContain('│ check 9: backend-2 down');
    // Only the tail: the first lines scrolled out of it.
    expect(text.split('\n').filter((l) => l.includes('│ check 8:'))).toHaveLength(0);
  });

  it('leaves the log tail to the error when the error carries it, so it is shown once', async () => {
    const terminal = new Terminal();
    const progress = new InkProgress(terminal as unknown as NodeJS.WriteStream);
    const failing = progress.step('build backend', async () => {
      progress.log("server.c:1:25: error: 'missing_symbol' undeclared");
      throw new UserError('building backend failed; the end of build-backend.log:', ["server.c:1:25: error: 'missing_symbol' undeclared"]);
    });
    await expect(failing).rejects.toThrow('building backend failed');
    await progress.close();
    const text = plain(terminal.text);
    expect(text).toMatch(/✗ build backend/);
    expect(text).not.toContain('missing_symbol');
  });
});

describe('PlainProgress (not a terminal)', () => {
  it('prints one line per step, when it ends: ✓ or ✗ with the duration', async () => {
    const out = new Terminal();
    const progress = new PlainProgress(out, false);
    await progress.step('build proxy', async () => {});
    await progress.step('start backend-1', async () => {
      throw new UserError('no');
    }).catch(() => {});
    expect(out.text.split('\n').filter(Boolean).map((l) => l.replace(/\(\d+ ms\)/, '(N)'))).toEqual(['✓ build proxy (N)', '✗ start backend-1 (N)']);
  });
});
