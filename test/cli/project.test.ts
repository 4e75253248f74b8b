import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uproxy } from './run.js';

/** Finding the project, and what `init` does around an existing one, as a user runs them. */

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'uproxy-project-'));
});
afterAll(async () => {
  for (const dir of readdirSync(root)) await uproxy(['down', '--force'], join(root, dir));
  rmSync(root, { recursive: true, force: true });
});

async function init(name: string, ...args: string[]): Promise<string> {
  const result = await uproxy(['init', name, ...args], root);
  expect(result.exitCode, result.stderr).toBe(0);
  return join(root, name);
}

describe('project handling', () => {
  it('finds the project from any subdirectory, and says where it looked when there is none', async () => {
    const dir = await init('walk');
    const deep = join(dir, 'backend/src');
    const ps = await uproxy(['ps'], deep);
    expect(ps.exitCode, ps.stderr).toBe(0);
    expect(ps.stdout).toMatch(/No fleet is running here/);
    const dry = await uproxy(['up', '--dry-run'], deep);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout.split('\n')[0]).toBe(`make -C ${dir}/proxy`);
    // -C starts the search where it points, as git -C does.
    const fromC = await uproxy(['-C', 'walk/backend', 'up', '--dry-run'], root);
    expect(fromC.stdout.split('\n')[0]).toBe(`make -C ${dir}/proxy`);
    // init --tokens-only works on an existing project, so it looks for it the same way.
    const tokens = await uproxy(['init', '--tokens-only'], deep);
    expect(tokens.exitCode, tokens.stderr).toBe(0);
    expect(tokens.stdout).toContain(`New tokens for ${dir}:`);
    expect(readFileSync(join(dir, '.uproxy/client-token'), 'utf8')).toContain(tokens.stdout.split('\n')[1]!.trim());

    const empty = join(root, 'empty/a/b');
    mkdirSync(empty, { recursive: true });
    const looked: string[] = [];
    for (let at = empty; ; at = dirname(at)) {
      looked.push(`    ${join(at, 'uproxy.json')}`);
      if (dirname(at) === at) break;
    }
    for (const command of [['ps'], ['up'], ['down'], ['logs', 'proxy'], ['status', '--once']]) {
      const result = await uproxy(command, empty);
      expect(result.exitCode, command.join(' ')).toBe(1);
      expect(result.stderr, command.join(' ')).toBe(
        [
          `uproxy: no uproxy.json in ${empty} or any directory above it: run \`uproxy init\` to create a project there, or run uproxy inside a project (or with -C DIR)`,
          '  looked for:',
          ...looked,
        ].join('\n'),
      );
    }
  });

  it('names uproxy.json:LINE:COL of a JSON syntax error, with the line and a caret', async () => {
    const dir = await init('syntax');
    const file = join(dir, 'uproxy.json');
    const lines = readFileSync(file, 'utf8').split('\n');
    const at = lines.findIndex((line) => line.includes('"runtime"'));
    lines[at] = lines[at]!.replace(/,$/, '');
    writeFileSync(file, lines.join('\n'));
    const result = await uproxy(['up', '--dry-run'], join(dir, 'proxy'));
    expect(result.exitCode).toBe(1);
    const next = lines[at + 1]!;
    const column = next.indexOf('"') + 1;
    expect(result.stderr.split('\n').slice(0, 4)).toEqual([
      `uproxy: ${file}:${at + 2}:${column}: not valid JSON: Expected ',' or '}' after property value`,
      `  ${at + 1} | ${lines[at]}`,
      `  ${at + 2} | ${next}`,
      `  ${' '.repeat(String(at + 2).length)} | ${' '.repeat(column - 1)}^`,
    ]);
    expect(result.stderr).not.toContain('--debug');
  });

  it('init beside a .gitignore adds its lines to it, once; init FILE says it is a file', async () => {
    const dir = join(root, 'ignored');
    mkdirSync(dir);
    const mine = '# mine\nnode_modules/\n.env\n';
    writeFileSync(join(dir, '.gitignore'), mine);
    await init('ignored');
    const merged = readFileSync(join(dir, '.gitignore'), 'utf8');
    expect(merged.startsWith(mine)).toBe(true);
    expect(merged.split('\n')).toContain('.uproxy/');
    await init('ignored', '--force');
    expect(readFileSync(join(dir, '.gitignore'), 'utf8')).toBe(merged);

    writeFileSync(join(root, 'notes.txt'), 'keep me\n');
    const file = await uproxy(['init', 'notes.txt'], root);
    expect(file.exitCode).toBe(1);
    expect(file.stderr).toBe('uproxy: notes.txt is a file, not a directory: `uproxy init [DIR]` creates the project in directory DIR (made when missing); give it a directory or a new name\n'.trimEnd());
    const inside = await uproxy(['init', 'notes.txt/demo', '--force'], root);
    expect(inside.stderr).toMatch(/^uproxy: \S+\/notes\.txt is a file, so notes\.txt\/demo cannot be made in it/);
    expect(readFileSync(join(root, 'notes.txt'), 'utf8')).toBe('keep me\n');
  });

  it("init refuses over a running fleet, --force included, and says how to stop it; the README's /metrics line reads that fleet", { timeout: 240_000 }, async () => {
    const dir = await init('running', '--backends', '1');
    const configFile = join(dir, 'uproxy.json');
    const config = JSON.parse(readFileSync(configFile, 'utf8'));
    Object.assign(config.proxy, { port: 0, adminPort: 0 });
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    const up = await uproxy(['up'], join(dir, 'backend'));
    expect(up.exitCode, up.stderr).toBe(0);
    const before = { config: readFileSync(configFile, 'utf8'), token: readFileSync(join(dir, '.uproxy/client-token'), 'utf8') };

    const ps = await uproxy(['ps'], join(dir, 'backend/src'));
    expect(ps.stdout).toMatch(/^proxy +proxy +127\.0\.0\.1:\d+ +\d+ .*running, serving$/m);

    // The README's /metrics line as written there, at this fleet's admin address (its ports are 0).
    const admin = JSON.parse((await uproxy(['ps', '--json'], dir)).stdout).proxy.admin as string;
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const line = /^curl -H "Authorization: Bearer \$\(cat \.uproxy\/admin-token\)" http:\/\/127\.0\.0\.1:8081\/metrics$/m.exec(readme)?.[0];
    expect(line).toBeDefined();
    const metrics = await execa(`${line!.replace('127.0.0.1:8081', admin)} --silent --fail --max-time 5`, { shell: true, cwd: dir, reject: false });
    expect(metrics.exitCode, metrics.stderr).toBe(0);
    expect(metrics.stdout).toMatch(/^uproxy_backend_up\{backend="backend-1"\} 1$/m);
    expect(metrics.stdout).toMatch(/^uproxy_requests_total\{class="2xx"\} \d+$/m);

    for (const force of [[], ['--force']]) {
      const again = await uproxy(['init', 'running', ...force], root);
      expect(again.exitCode).toBe(1);
      expect(again.stderr).toMatch(new RegExp(`^uproxy: ${dir} has a running fleet, "running" \\(2 machines, host runtime\\): init would replace`));
    }
    expect(readFileSync(configFile, 'utf8')).toBe(before.config);
    expect(readFileSync(join(dir, '.uproxy/client-token'), 'utf8')).toBe(before.token);

    // The command it names works as printed, from where init was run.
    const hint = (await uproxy(['init', 'running'], root)).stderr;
    const stop = /Stop it first with `(.+ -C running down)`/.exec(hint)?.[1];
    expect(stop, hint).toBeDefined();
    const down = await execa(stop!, { shell: true, cwd: root, reject: false });
    expect(down.exitCode, down.stderr).toBe(0);
    expect(down.stdout).toContain('Stopped 2 machines');
    await init('running', '--force');
  });
});
