/**
 * The one renderer of external command lines. Every program uproxy runs (qemu, ip, nft,
 * kraft, the proxy, the backend app) is described by a typed options object whose keys are
 * the program's own option names, in the order they must appear; this module turns such an
 * object into argv. Nothing is ever joined into a shell string, so no value needs quoting.
 */

export type Scalar = string | number;

/**
 * A QEMU-style property list, rendered as `head,key=value,...`: the unnamed `head` first
 * (e.g. the netdev type or device driver), then each property; `true`/`false` become
 * `on`/`off`, `undefined` properties are left out and commas in values are doubled, as QEMU
 * expects.
 */
export interface PropList {
  head?: string;
  props?: Readonly<Record<string, Scalar | boolean | undefined>>;
}

export type OptionValue = Scalar | boolean | PropList | readonly (Scalar | PropList)[] | undefined;

export type Options = Readonly<Record<string, OptionValue>>;

/**
 * How a program spells its options: `--name value` (GNU style), `-name value` (QEMU) or
 * bare keywords `name value` (iproute2). `true` renders the option alone; `false` and
 * `undefined` leave it out; an array repeats the option once per element.
 */
export type Dialect = '--' | '-' | 'keyword';

/** A program and its arguments, as plain data: what a plan holds and a runtime executes. */
export interface CommandLine {
  file: string;
  args: string[];
}

export function renderOptions(options: Options, dialect: Dialect): string[] {
  const prefix = dialect === 'keyword' ? '' : dialect;
  const argv: string[] = [];
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined || value === false) continue;
    const flag = prefix + name;
    if (value === true) {
      argv.push(flag);
      continue;
    }
    const values = Array.isArray(value) ? value : [value as Scalar | PropList];
    for (const v of values) argv.push(flag, renderValue(v));
  }
  return argv;
}

/**
 * A program and its argv, assembled from parts in order: words such as `['link', 'add']`
 * or `['--', ...programArgs]`, and rendered option groups from `renderOptions`.
 */
export function commandLine(file: string, ...parts: readonly (readonly string[])[]): CommandLine {
  return { file, args: parts.flat() };
}

function renderValue(value: Scalar | PropList): string {
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  const parts: string[] = value.head === undefined ? [] : [escapeComma(value.head)];
  for (const [key, prop] of Object.entries(value.props ?? {})) {
    if (prop === undefined) continue;
    const text = prop === true ? 'on' : prop === false ? 'off' : String(prop);
    parts.push(`${key}=${escapeComma(text)}`);
  }
  return parts.join(',');
}

function escapeComma(text: string): string {
  return text.replaceAll(',', ',,');
}

/** A copy-pasteable rendering for `--dry-run` and error messages (POSIX shell quoting). */
export function toShell(command: CommandLine): string {
  return [command.file, ...command.args].map(shellQuote).join(' ');
}

function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_./:=,@%+-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
