/**
 * Builds what the OCI images hold, the way `up` builds it for the project's runtime: `make
 * static` in each app (skipped when unchanged) for static images; for Unikraft images `kraft
 * build` (the kraft runtime) or the kernels found where `kraft build` left them (the qemu
 * runtime, which boots but does not build them).
 */
import { join } from 'node:path';
import { readIfExists } from '../files.js';
import { KRAFT } from '../fleet/kraft-plan.js';
import type { FleetPlan, Role } from '../fleet/plan.js';
import { staticBinary } from '../fleet/vm-plan.js';
import { UserError } from '../errors.js';
import { findUnikraftBuilds } from '../runtimes/kraftfile.js';
import { findOnPath } from '../runtimes/processes.js';
import { buildStaticPrograms } from '../runtimes/qemu.js';
import { loadRuntime, type RuntimeContext } from '../runtimes/runtime.js';
import { imageKind, type BuiltApp } from './app-image.js';
import { unikraftVersion } from './urunc.js';

export async function buildImageApps(plan: FleetPlan, ctx: RuntimeContext): Promise<Record<Role, BuiltApp>> {
  const apps = { proxy: plan.proxy.app, backend: plan.backends[0]?.app ?? plan.proxy.app };
  if (imageKind(plan) === 'static') {
    const { command, env } = plan.config.backends;
    if (command !== undefined || env !== undefined) {
      throw new UserError(
        `backends.${command === undefined ? 'env' : 'command'} in uproxy.json runs your app as a host process, but an OCI image holds the static binary that backends.app's \`make static\` builds: ` +
          'remove backends.command and backends.env to package the default backend, or package your app with its own Dockerfile',
      );
    }
    await buildStaticPrograms(plan, ctx);
    return { proxy: { kind: 'static', binary: staticBinary(apps.proxy.binary) }, backend: { kind: 'static', binary: staticBinary(apps.backend.binary) } };
  }
  if (plan.config.unikraft.mode !== 'native') {
    throw new UserError(
      'an OCI image for urunc holds the kernel to boot, but unikraft.mode "elfloader" runs your binary on kraft\'s prebuilt base kernel, which uproxy does not have as a file: ' +
        'set "unikraft": {"mode": "native"} in uproxy.json, or build static images with --runtime host',
    );
  }
  if (plan.runtime === 'kraft') {
    if (findOnPath(KRAFT) === null) throw new UserError('kraft is not installed or not on PATH (the kraft runtime builds the kernels with it): install kraftkit (https://unikraft.org/docs/cli/install), or build static images with --runtime host');
    await (await loadRuntime('kraft')).build(plan, ctx);
  }
  const builds = await ctx.progress.step('find the kraft-built Unikraft kernels', async () => findUnikraftBuilds(plan));
  const built = (role: Role): BuiltApp => ({ kind: 'unikraft', ...builds[role], unikraftVersion: builtUnikraftVersion(apps[role].dir) });
  return { proxy: built('proxy'), backend: built('backend') };
}

/** The release of the Unikraft core kraft fetched into the app (kraftkit places it in `.unikraft/unikraft`), if it is there. */
function builtUnikraftVersion(appDir: string): string | undefined {
  const core = join(appDir, '.unikraft', 'unikraft');
  const text = readIfExists(join(core, 'version.mk')) ?? readIfExists(join(core, 'Makefile'));
  return text === null ? undefined : unikraftVersion(text);
}
