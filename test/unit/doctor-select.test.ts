import { describe, expect, it } from 'vitest';
import { selectChecks, type Needs } from '../../cli/core/doctor.js';
import { uproxyConfig } from '../../cli/config/schema.js';

/** Which checks `uproxy doctor` runs for a runtime, and which of them decide its exit status. */
const defaults: Needs = { qemu: uproxyConfig.shape.qemu.parse(undefined), unikraft: uproxyConfig.shape.unikraft.parse(undefined) };
const needs = (change: { qemu?: Partial<Needs['qemu']>; unikraft?: Partial<Needs['unikraft']> }): Needs => ({
  qemu: { ...defaults.qemu, ...change.qemu },
  unikraft: { ...defaults.unikraft, ...change.unikraft },
});
const names = (selected: ReturnType<typeof selectChecks>, needed?: boolean) => selected.filter((s) => needed === undefined || s.needed === needed).map((s) => s.name);

describe('doctor: the checks a runtime needs', () => {
  it('the host runtime needs its build tools only: no QEMU, and no KVM probe', () => {
    const host = selectChecks('host', defaults, false);
    expect(host).toEqual(['cc', 'make', 'llhttp', 'openssl'].map((name) => ({ name, needed: true })));
  });

  it('qemu with microvm guests needs the static build, QEMU, TCG and the network; KVM under accel auto is probed but not needed', () => {
    const qemu = selectChecks('qemu', defaults, false);
    expect(names(qemu, true)).toEqual(['cc', 'make', 'llhttp', 'openssl', 'musl-gcc', 'QEMU', 'TCG', 'tun/tap', 'bridge', 'CAP_NET_ADMIN', 'microvm kernel', 'busybox-static']);
    expect(names(qemu, false)).toEqual(['KVM']);
    const kvm = selectChecks('qemu', needs({ qemu: { accel: 'kvm' } }), false);
    expect(names(kvm, true)).toContain('KVM');
    expect(names(kvm)).not.toContain('TCG');
    expect(names(selectChecks('qemu', needs({ qemu: { accel: 'tcg' } }), false))).not.toContain('KVM');
  });

  it('unikraft guests need kraft, and BuildKit only for an elfloader rootfs built from a Dockerfile', () => {
    const unikraft = names(selectChecks('qemu', needs({ qemu: { guest: 'unikraft' } }), false), true);
    expect(unikraft).toEqual(['QEMU', 'TCG', 'tun/tap', 'bridge', 'CAP_NET_ADMIN', 'kraft']);
    expect(names(selectChecks('kraft', defaults, false), true)).toEqual(['cc', 'make', 'QEMU', 'tun/tap', 'bridge', 'CAP_NET_ADMIN', 'kraft']);
    expect(names(selectChecks('kraft', needs({ unikraft: { mode: 'elfloader' } }), false), true)).toContain('BuildKit');
    expect(names(selectChecks('kraft', needs({ unikraft: { mode: 'elfloader', rootfs: 'directory' } }), false))).not.toContain('BuildKit');
  });

  it('--all adds every other check, none of them needed', () => {
    const all = selectChecks('host', defaults, true);
    expect(all).toHaveLength(15);
    expect(names(all, true)).toEqual(['cc', 'make', 'llhttp', 'openssl']);
    expect(names(all, false)).toContain('KVM');
  });
});
