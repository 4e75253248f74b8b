import { loadConfig } from '../config/load.js';
import { uproxyConfig, type RuntimeName, type UproxyConfig } from '../config/schema.js';
import type { Check } from '../runtimes/probe.js';

/**
 * `uproxy doctor`: the checks a runtime needs, run on this host. Which checks that is (pure)
 * is apart from running them, so the host runtime provably never pays for a KVM probe.
 */

/** Every check doctor knows, in the order it prints them. */
const CHECKS = ['cc', 'make', 'llhttp', 'openssl', 'musl-gcc', 'QEMU', 'KVM', 'TCG', 'tun/tap', 'bridge', 'CAP_NET_ADMIN', 'microvm kernel', 'busybox-static', 'kraft', 'BuildKit'] as const;
export type CheckName = (typeof CHECKS)[number];

/** What of uproxy.json decides what a runtime needs. */
export type Needs = Pick<UproxyConfig, 'qemu' | 'unikraft'>;

export interface Selected {
  name: CheckName;
  /** `up` on this runtime fails without it; doctor exits 1 when it fails. */
  needed: boolean;
}

/**
 * The checks to run for `runtime`: what its `up` cannot do without, plus KVM under
 * `--accel auto` (it decides the speed, not whether the fleet runs: TCG stands in); with
 * `all`, every check, the others marked not needed.
 */
export function selectChecks(runtime: RuntimeName, config: Needs, all: boolean): Selected[] {
  const needed = new Set(neededBy(runtime, config));
  const informative = runtime === 'qemu' && config.qemu.accel === 'auto' ? ['KVM'] : [];
  return CHECKS.filter((name) => all || needed.has(name) || informative.includes(name)).map((name) => ({ name, needed: needed.has(name) }));
}

function neededBy(runtime: RuntimeName, config: Needs): CheckName[] {
  const hostBuild: CheckName[] = ['cc', 'make', 'llhttp', 'openssl'];
  const network: CheckName[] = ['tun/tap', 'bridge', 'CAP_NET_ADMIN'];
  const rootfs: CheckName[] = config.unikraft.mode === 'elfloader' && config.unikraft.rootfs === 'dockerfile' ? ['BuildKit'] : [];
  switch (runtime) {
    case 'host':
      return hostBuild;
    case 'qemu': {
      const accel: CheckName[] = config.qemu.accel === 'kvm' ? ['KVM'] : ['TCG'];
      // Unikraft guests are kernels kraft builds; microvm guests are static programs on a Linux kernel.
      const guests: CheckName[] = config.qemu.guest === 'unikraft' ? ['kraft', ...rootfs] : [...hostBuild, 'musl-gcc', 'microvm kernel', 'busybox-static'];
      return ['QEMU', ...accel, ...network, ...guests];
    }
    case 'kraft':
      // kraft builds with the host's make and compiler and runs its machines under QEMU.
      return ['cc', 'make', 'QEMU', ...network, 'kraft', ...rootfs];
  }
}

export interface DoctorCheck extends Check {
  needed: boolean;
}

export interface DoctorReport {
  runtime: RuntimeName;
  /** Where the runtime came from: the project's uproxy.json, --runtime, or init's default outside a project. */
  source: { project: string } | 'option' | 'default';
  checks: DoctorCheck[];
  /** Every needed check passed. */
  ok: boolean;
}

export interface DoctorRequest {
  /** The project, if doctor runs inside one. */
  dir?: string;
  runtime?: RuntimeName;
  all: boolean;
}

export async function doctor(request: DoctorRequest): Promise<DoctorReport> {
  const config: Needs & { runtime: RuntimeName } = request.dir
    ? loadConfig(request.dir)
    : { runtime: 'host', qemu: uproxyConfig.shape.qemu.parse(undefined), unikraft: uproxyConfig.shape.unikraft.parse(undefined) };
  const runtime = request.runtime ?? config.runtime;
  const source = request.runtime ? 'option' : request.dir ? { project: request.dir } : 'default';
  const checks = await runChecks(selectChecks(runtime, config, request.all));
  return { runtime, source, checks, ok: checks.every((c) => c.ok || !c.needed) };
}

/** Runs the selected checks, at the same time where they are independent. */
async function runChecks(selected: readonly Selected[]): Promise<DoctorCheck[]> {
  const probe = await import('../runtimes/probe.js');
  const wanted = new Set(selected.map((s) => s.name));
  const run = <T>(name: CheckName, check: () => T | Promise<T>): Promise<T | undefined> => Promise.resolve(wanted.has(name) ? check() : undefined);
  const [qemu, tun, bridge, netAdmin, kernel, busybox, kraft, buildkit] = await Promise.all([
    run('QEMU', probe.checkQemu), run('tun/tap', probe.checkTun), run('bridge', probe.checkBridge), run('CAP_NET_ADMIN', probe.checkNetAdmin),
    run('microvm kernel', probe.checkGuestKernel), run('busybox-static', probe.checkBusybox), run('kraft', () => probe.checkKraft()), run('BuildKit', () => probe.checkBuildkit()),
  ]);
  // The probe guests boot Linux where a kernel and a static busybox are at hand, else a boot sector.
  const probeKernel = busybox?.ok ? kernel?.kernel : undefined;
  // Each probe may run into its deadline (KVM hangs on nested hosts): at the same time, they cost the longer one, not the sum.
  const emulation = qemu?.ok ? await Promise.all([run('KVM', () => probe.checkKvm(probeKernel)), run('TCG', () => probe.checkTcg(probeKernel))]) : [];
  const microvmKernel = kernel && { name: kernel.name, ok: kernel.ok, detail: kernel.detail, fix: kernel.fix };
  const found = [...probe.buildChecks(), qemu, ...emulation, tun, bridge, netAdmin, microvmKernel, busybox, kraft, buildkit];
  const byName = new Map(found.filter((c): c is Check => c !== undefined).map((c) => [c.name, c]));
  return selected.flatMap(({ name, needed }) => {
    const check = byName.get(name);
    return check ? [{ ...check, needed }] : [];
  });
}

/** The report as lines: what it checked for, needed checks first, a fix under each failure, and the verdict. */
export function doctorLines(report: DoctorReport): string[] {
  const what = `the ${report.runtime} runtime`;
  const heading =
    report.source === 'default'
      ? `No uproxy.json here or in a directory above: checking what ${what} (init's default) needs; --runtime qemu or kraft checks another, --all everything.`
      : report.source === 'option'
        ? `Checking what ${what} needs (--runtime):`
        : `Checking what ${what} of ${report.source.project} needs:`;
  const width = Math.max(0, ...report.checks.map((c) => c.name.length));
  const line = (check: DoctorCheck): string[] => [
    `${check.ok ? '✓' : check.needed ? '✗' : '-'} ${check.name.padEnd(width)}  ${check.detail}`,
    ...(!check.ok && check.fix ? [`  ${' '.repeat(width)}  fix: ${check.fix}`] : []),
  ];
  const others = report.checks.filter((c) => !c.needed);
  const failed = report.checks.filter((c) => c.needed && !c.ok).map((c) => c.name);
  return [
    heading,
    ...report.checks.filter((c) => c.needed).flatMap(line),
    ...(others.length > 0 ? [`Not needed by ${what}:`, ...others.flatMap(line)] : []),
    failed.length === 0
      ? `Everything ${what} needs is here.`
      : `${what[0]!.toUpperCase()}${what.slice(1)} lacks ${failed.length === 1 ? 'one thing it needs' : `${failed.length} things it needs`}: ${failed.join(', ')} (see the fix under each).`,
  ];
}
