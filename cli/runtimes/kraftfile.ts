/**
 * What uproxy reads from an app's Kraftfile (its `name:`, which names the kernel `kraft build`
 * leaves in `.unikraft/build/`) and the build artifacts found there. Both Unikraft paths need
 * them: the kraft runtime, and the qemu runtime booting those kernels itself
 * (`qemu.guest: "unikraft"`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { toShell } from '../fleet/argv.js';
import { kraftBuildCommand, nativeKernelPath, rootfsCpioPath } from '../fleet/kraft-plan.js';
import type { FleetPlan, Role } from '../fleet/plan.js';
import type { UnikraftBuild } from '../fleet/vm-plan.js';
import { UserError } from '../errors.js';

/** The `name:` of each app's Kraftfile (top-level key); the role's name when it has none. */
export function readKraftfileNames(plan: FleetPlan, user: string): Record<Role, string> {
  const read = (dir: string, fallback: string): string => {
    const file = join(dir, 'Kraftfile');
    if (!existsSync(file)) {
      throw new UserError(`${relative(plan.projectDir, dir) || '.'}/Kraftfile is missing: ${user} needs one in each app (kraft builds the app from it); create one with \`uproxy init --unikraft native\` in a new directory and copy it over`);
    }
    const match = /^name:\s*["']?([A-Za-z0-9._-]+)["']?\s*(#.*)?$/m.exec(readFileSync(file, 'utf8'));
    return match?.[1] ?? fallback;
  };
  return { proxy: read(plan.proxy.app.dir, 'proxy'), backend: read(plan.backends[0]?.app.dir ?? plan.proxy.app.dir, 'backend') };
}

/**
 * The kernels (and initrds, where a Kraftfile has a rootfs) that `kraft build --plat qemu
 * --arch x86_64` left in each app, for the qemu runtime's `unikraft` guests. uproxy boots them
 * but does not build them: a missing kernel is an error saying how to build it.
 * `requireBuilt: false` gives the paths anyway (`up --dry-run`).
 */
export function findUnikraftBuilds(plan: FleetPlan, options: { requireBuilt?: boolean } = {}): Record<Role, UnikraftBuild> {
  const { config } = plan;
  if (config.unikraft.mode !== 'native') {
    throw new UserError(
      'qemu.guest "unikraft" boots native Unikraft kernels (unikraft.mode "native"); an elfloader app runs on kraft\'s prebuilt base kernel: ' +
        'use --runtime kraft for it, or set "unikraft": {"mode": "native"} in uproxy.json',
    );
  }
  const names = readKraftfileNames(plan, 'the qemu runtime with unikraft guests');
  const apps: Record<Role, string> = { proxy: plan.proxy.app.dir, backend: plan.backends[0]?.app.dir ?? plan.proxy.app.dir };
  const builds = {} as Record<Role, UnikraftBuild>;
  const missing: Role[] = [];
  for (const role of ['proxy', 'backend'] as const) {
    const dir = apps[role];
    const kernel = nativeKernelPath(dir, names[role]);
    const initrd = rootfsCpioPath(dir);
    builds[role] = { kernel, initrd: existsSync(initrd) ? initrd : undefined };
    if (!existsSync(kernel)) missing.push(role);
  }
  if (missing.length > 0 && options.requireBuilt !== false) {
    const dirs = [...new Set(missing.map((role) => apps[role]))];
    throw new UserError(
      `no Unikraft kernel to boot: ${missing.map((role) => relative(plan.projectDir, builds[role].kernel)).join(' and ')} ` +
        `${missing.length > 1 ? 'do' : 'does'} not exist. qemu.guest "unikraft" boots what \`kraft build\` leaves in each app; build ${dirs.length > 1 ? 'them' : 'it'} first ` +
        '(kraftkit: https://unikraft.org/docs/cli/install), or let `uproxy up --runtime kraft` build and run them, or use "qemu": {"guest": "microvm"}:',
      dirs.map((dir) => `(cd ${relative(plan.projectDir, dir) || '.'} && ${toShell(kraftBuildCommand('.'))})`),
    );
  }
  return builds;
}
