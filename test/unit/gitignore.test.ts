import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mergeGitignore } from '../../cli/gitignore.js';

const ours = readFileSync(new URL('../../templates/gitignore', import.meta.url), 'utf8');

describe('init beside an existing .gitignore', () => {
  it('keeps every line of the user and adds the patterns it lacks, with their comments, once', () => {
    const mine = '# my app\nnode_modules/\n.env\nbuild\n';
    const merged = mergeGitignore(mine, ours);
    expect(merged.startsWith(`${mine}\n`)).toBe(true);
    const added = merged.slice(mine.length).split('\n');
    expect(added).toContain('.uproxy/');
    expect(added).toContain('# uproxy: tokens, state and logs (never commit .uproxy/: it holds the plaintext tokens)');
    // `build` already covers what `build/` would.
    expect(added).not.toContain('build/');
    expect(mergeGitignore(merged, ours)).toBe(merged);
  });

  it('adds nothing to a file that has them all, and ends a last line that lacked its newline', () => {
    expect(mergeGitignore(ours, ours)).toBe(ours);
    expect(mergeGitignore('.env', '.uproxy/\n')).toBe('.env\n\n.uproxy/\n');
    expect(mergeGitignore('', '# why\n.uproxy/\n')).toBe('# why\n.uproxy/\n');
  });
});
