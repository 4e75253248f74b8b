import { describe, expect, it } from 'vitest';
import { healthProblem, passedChecks } from '../../cli/runtimes/health-wait.js';
import { backend, stats } from '../tui/stats-fixture.js';

/** The final wait's verdict on one `/stats` answer. */
describe('healthProblem', () => {
  const answer = stats({
    backends: [
      backend('backend-1', 9001, { health: { checks: 10, failures: 1, last_change_ms: 0 } }),
      backend('backend-2', 9002, { health: { checks: 12, failures: 4, last_change_ms: 0 } }),
    ],
  });

  it('counts passed checks per backend', () => {
    expect(passedChecks(answer)).toEqual({ 'backend-1': 9, 'backend-2': 8 });
  });

  it('is satisfied when every planned backend is up, and names the missing or not up ones', () => {
    expect(healthProblem(answer, ['backend-1', 'backend-2'])).toBeNull();
    expect(healthProblem(answer, ['backend-1', 'backend-2', 'backend-3'])).toBe('the proxy on this port reports backends backend-1, backend-2, expected backend-1, backend-2, backend-3');
    const down = stats({ backends: [backend('backend-1', 9001), backend('backend-2', 9002, { state: 'down' })] });
    expect(healthProblem(down, ['backend-1', 'backend-2'])).toBe('not up yet: backend-2 (down)');
  });

  it('does not take a restarted backend as up until a check has passed since it was restarted (the proxy may not have noticed the old one die)', () => {
    expect(healthProblem(answer, ['backend-1', 'backend-2'], { 'backend-2': 8 })).toBe('not up yet: backend-2 (restarted, no health check passed yet)');
    expect(healthProblem(answer, ['backend-1', 'backend-2'], { 'backend-2': 7 })).toBeNull();
  });
});
