import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readState, removeState, statePath, withLock, writeState, type FleetState } from '../../cli/fleet/state.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'uproxy-state-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const state: FleetState = {
  version: 1,
  fleet: 'demo',
  runtime: 'host',
  proxy: { listen: '127.0.0.1:8080', admin: '127.0.0.1:8081' },
  machines: [
    { name: 'backend-1', role: 'backend', address: '127.0.0.1:9001', pid: null, command: ['/b', '--name', 'backend-1'], log: '/l', fingerprint: 'f', status: 'starting' },
  ],
  resources: { bridge: 'uproxy0' },
};

describe('state file', () => {
  it('round-trips and leaves no temporary file behind', () => {
    expect(readState(dir)).toBeNull();
    writeState(dir, state);
    expect(readState(dir)).toEqual(state);
    expect(readdirSync(join(dir, '.uproxy'))).toEqual(['state.json']);
    removeState(dir);
    expect(readState(dir)).toBeNull();
  });

  it('says what to do when the file is damaged', () => {
    writeState(dir, state);
    writeFileSync(statePath(dir), '{"version":1,');
    expect(() => readState(dir)).toThrow(/damaged.*delete it/);
  });
});

describe('project lock', () => {
  it('lets only one up/down work at a time and is released afterwards', async () => {
    let inner: unknown;
    await withLock(dir, 'up', async () => {
      inner = await withLock(dir, 'down', async () => 'ran').catch((error: Error) => error);
    });
    expect(String(inner)).toMatch(/another `uproxy up` \(pid \d+\) is working on this project/);
    await expect(withLock(dir, 'down', async () => 'ran')).resolves.toBe('ran');
  });

  it('takes over a lock whose process is gone', async () => {
    await withLock(dir, 'up', async () => {});
    writeFileSync(join(dir, '.uproxy', 'lock'), JSON.stringify({ pid: 2 ** 22 + 7, command: 'up' }));
    await expect(withLock(dir, 'down', async () => 'ran')).resolves.toBe('ran');
  });

  it('removes the temporary state file a killed uproxy left behind, and nothing else', async () => {
    await withLock(dir, 'up', async () => {});
    const left = join(dir, '.uproxy', `state.json.${2 ** 22 + 7}.tmp`);
    writeFileSync(left, '{"half": ');
    writeFileSync(join(dir, '.uproxy', 'client-token'), 'x\n');
    await withLock(dir, 'up', async () => {});
    expect(readdirSync(join(dir, '.uproxy')).sort()).toEqual(['client-token']);
  });
});
