import { basename, dirname, join, resolve } from 'node:path';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { withReplacedHashes } from '../config/edit.js';
import { CONFIG_FILE, loadConfig, SCHEMA_FILE } from '../config/load.js';
import { requireProject } from '../config/project.js';
import { configJsonSchema, machineNamePattern, uproxyConfig, type RuntimeName, type UproxyConfigInput } from '../config/schema.js';
import { generateToken, sha256Hex, writeToken } from '../config/tokens.js';
import { writeFileAtomic } from '../files.js';
import { readState } from '../fleet/state.js';
import { refuseOverwrite, renderTemplates, templateFiles, type TemplateOptions, type UnikraftMode } from '../templates.js';
import { UserError } from '../errors.js';
import { uproxyCommand } from './output.js';

export interface InitOptions {
  runtime: RuntimeName;
  backends: number;
  force: boolean;
  /** Fleet name; derived from the directory name when absent. */
  name?: string;
  /** How the apps become unikernels (kraft runtime, qemu's unikraft guests); native by default. */
  unikraft?: UnikraftMode;
  /** Copy the local llhttp sources into proxy/llhttp/ for offline unikernel builds. */
  vendorLlhttp?: boolean;
}

export interface InitResult {
  dir: string;
  files: string[];
  /** Shown once by `init`; afterwards only in .uproxy/client-token. */
  clientToken: string;
  port: number;
  /** proxy.tls.mode of the new uproxy.json. */
  tls: 'local-ca';
}

/**
 * Scaffolds a project: templates, uproxy.json (+ its JSON Schema), fresh tokens and the project
 * CA (kept when there is one: clients may already trust it) for proxy.tls.mode local-ca, which
 * the new uproxy.json sets.
 */
export async function initProject(dirArgument: string, options: InitOptions): Promise<InitResult> {
  const dir = resolve(dirArgument);
  refuseNonDirectory(dir, dirArgument);
  refuseRunningFleet(dir, dirArgument);
  const name = options.name ?? fleetNameFrom(dir);
  const generated = [CONFIG_FILE, SCHEMA_FILE];
  const templateOptions: TemplateOptions = { unikraft: options.unikraft, vendorLlhttp: options.vendorLlhttp };
  const templates = templateFiles(undefined, templateOptions);
  if (!options.force) refuseOverwrite(dir, [...generated, ...templates.map((f) => f.to)]);

  const clientToken = generateToken();
  const adminToken = generateToken();
  const input: UproxyConfigInput = {
    $schema: `./${SCHEMA_FILE}`,
    name,
    runtime: options.runtime,
    proxy: {
      tokens: [{ name: 'default', sha256: sha256Hex(clientToken) }],
      adminTokenSha256: sha256Hex(adminToken),
      // HTTPS from the first `up`, with the project CA made below, as Caddy serves locally.
      tls: { mode: 'local-ca' as const },
    },
    backends: { count: options.backends },
    // The prebuilt base kernel of elfloader is general-purpose: it needs more than a native build.
    ...(options.unikraft === 'elfloader' ? { unikraft: { mode: 'elfloader' as const, proxyMemoryMiB: 64, backendMemoryMiB: 64 } } : {}),
  };
  const checked = uproxyConfig.safeParse(input);
  if (!checked.success) throw new UserError(`cannot create a fleet named "${name}": ${checked.error.issues[0]?.message ?? 'invalid'}`);

  mkdirSync(dir, { recursive: true });
  const files = renderTemplates(dir, true, undefined, templateOptions);
  writeFileAtomic(join(dir, SCHEMA_FILE), `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  writeFileAtomic(join(dir, CONFIG_FILE), `${JSON.stringify(input, null, 2)}\n`);
  writeToken(dir, 'client', clientToken);
  writeToken(dir, 'admin', adminToken);
  const { ensureCa } = await import('../tls/local-ca.js');
  await ensureCa(dir, name);
  const ca = ['.uproxy/tls/ca.pem', '.uproxy/tls/ca.key'];
  return { dir, files: [...generated, ...files, '.uproxy/client-token', '.uproxy/admin-token', ...ca], clientToken, port: checked.data.proxy.port, tls: 'local-ca' };
}

/** A file where the project's directory (or one above it) would go is named, not tripped over by mkdir. */
function refuseNonDirectory(dir: string, dirArgument: string): void {
  for (let path = dir; ; path = dirname(path)) {
    if (existsSync(path)) {
      if (statSync(path).isDirectory()) return;
      const what = path === dir ? `${dirArgument} is a file, not a directory` : `${path} is a file, so ${dirArgument} cannot be made in it`;
      throw new UserError(`${what}: \`uproxy init [DIR]\` creates the project in directory DIR (made when missing); give it a directory or a new name`);
    }
    if (dirname(path) === path) return;
  }
}

/** A running fleet runs from this directory's sources and tokens: init (even --force) waits until it is down. */
function refuseRunningFleet(dir: string, dirArgument: string): void {
  const state = readState(dir);
  if (!state || state.machines.length === 0) return;
  const count = `${state.machines.length} ${state.machines.length === 1 ? 'machine' : 'machines'}`;
  const down = `${uproxyCommand(process.cwd())}${dir === process.cwd() ? '' : ` -C ${dirArgument}`} down`;
  throw new UserError(
    `${dir} has a running fleet, "${state.fleet}" (${count}, ${state.runtime} runtime): init would replace the uproxy.json, sources and tokens it runs from. ` +
      `Stop it first with \`${down}\`, then run init again`,
  );
}

/**
 * New client and admin tokens for an existing project, and nothing else: the plaintext files
 * are rewritten, and in uproxy.json only the two hashes change (the `default` client token, or
 * the first one, and the admin token). Sources, templates and other tokens stay as they are.
 * The project is found as every other command finds it: in `dirArgument` or a directory above.
 */
export function regenerateTokens(dirArgument: string): { dir: string; clientToken: string; clientTokenName: string } {
  if (!existsSync(dirArgument)) throw new UserError(`${dirArgument}: no such directory (init --tokens-only runs in a project, or takes its directory)`);
  const dir = requireProject(dirArgument);
  const config = loadConfig(dir);
  const client = config.proxy.tokens.find((t) => t.name === 'default') ?? config.proxy.tokens[0]!;
  const clientToken = generateToken();
  const adminToken = generateToken();
  const file = join(dir, CONFIG_FILE);
  const text = withReplacedHashes(readFileSync(file, 'utf8'), [
    { from: client.sha256, to: sha256Hex(clientToken) },
    { from: config.proxy.adminTokenSha256, to: sha256Hex(adminToken) },
  ]);
  writeToken(dir, 'client', clientToken);
  writeToken(dir, 'admin', adminToken);
  writeFileAtomic(file, text);
  return { dir, clientToken, clientTokenName: client.name };
}

/** `My Demo_2` -> `my-demo-2`; a name that cannot be made valid becomes `fleet`. */
export function fleetNameFrom(dir: string): string {
  const candidate = basename(dir)
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .replace(/-+$/, '')
    .slice(0, 24)
    .replace(/-+$/, '');
  return machineNamePattern.test(candidate) ? candidate : 'fleet';
}
