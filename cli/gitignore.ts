/**
 * `init` beside a .gitignore of the user's own: uproxy's patterns are added to it, never put in
 * its place. Only the patterns it lacks are added (with the comments that explain them), so a
 * second `init --force` changes nothing.
 */
export function mergeGitignore(existing: string, ours: string): string {
  const has = new Set(existing.split('\n').map(pattern).filter((line) => line !== ''));
  const added: string[] = [];
  let comments: string[] = [];
  for (const line of ours.split('\n')) {
    if (line.startsWith('#')) {
      comments.push(line);
      continue;
    }
    if (line.trim() !== '' && !has.has(pattern(line))) added.push(...comments, line);
    comments = [];
  }
  if (added.length === 0) return existing;
  const separated = existing === '' ? '' : existing.endsWith('\n') ? `${existing}\n` : `${existing}\n\n`;
  return `${separated}${added.join('\n')}\n`;
}

/** A pattern as git reads it: `.uproxy` covers all that `.uproxy/` does, so either counts as present. */
function pattern(line: string): string {
  const trimmed = line.trim();
  return trimmed.startsWith('#') ? '' : trimmed.replace(/\/$/, '');
}
