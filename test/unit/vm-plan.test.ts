import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../cli/config/load.js';
import { toShell } from '../../cli/fleet/argv.js';
import { planFleet } from '../../cli/fleet/plan.js';
import { planVmFleet, proxyAddresses } from '../../cli/fleet/vm-plan.js';
import { planKraftFleet } from '../../cli/fleet/kraft-plan.js';
import { moduleLoadOrder } from '../../cli/runtimes/kernel.js';

const hash = 'a'.repeat(64);
const config = (extra: Record<string, unknown> = {}) =>
  parseConfig(JSON.stringify({ name: 'demo', proxy: { tokens: [{ name: 'ci', sha256: hash }], adminTokenSha256: hash, publish: '0.0.0.0:9090' }, ...extra }), 'uproxy.json');

const inputs = { accel: 'tcg' as const, kernel: '/k/vmlinuz', stateDir: '/srv/demo/.uproxy' };

describe('planVmFleet', () => {
  const vm = planVmFleet(planFleet(config(), '/srv/demo', { backends: 3, runtime: 'qemu' }), inputs);

  it('starts the backends before the proxy, each on its own address, tap and MAC', () => {
    expect(vm.machines.map((m) => [m.name, m.address.ip, m.serves])).toEqual([
      ['backend-1', '172.44.0.3', '172.44.0.3:8080'],
      ['backend-2', '172.44.0.4', '172.44.0.4:8080'],
      ['backend-3', '172.44.0.5', '172.44.0.5:8080'],
      ['proxy', '172.44.0.2', '172.44.0.2:8080'],
    ]);
    expect(vm.network.taps).toEqual(vm.machines.map((m) => m.address.tap));
    expect(vm.network.bridge).toEqual({ name: 'uproxy0', address: '172.44.0.1/24' });
    expect(vm.proxy).toEqual({ listen: '172.44.0.2:8080', admin: '172.44.0.2:8081' });
  });

  it('points the proxy at the backends over the bridge, with token hashes only, and runs the static binaries', () => {
    const proxy = vm.machines.at(-1)!;
    expect(proxy.initramfs?.program).toBe('/srv/demo/proxy/build/uproxy-proxy-static');
    expect(proxy.programArgs.join(' ')).toContain('--listen 0.0.0.0:8080 --admin 172.44.0.2:8081');
    expect(proxy.programArgs).toContain('backend-3=172.44.0.5:8080');
    expect(proxy.programArgs).toContain(`ci:${hash}`);
    expect(vm.machines[0]!.programArgs).toEqual(['--listen', '172.44.0.3:8080', '--name', 'backend-1']);
  });

  it('publishes only the proxy client port', () => {
    expect(vm.network.publish).toEqual({ listenAddress: '0.0.0.0', port: 9090, target: { ip: '172.44.0.2', port: 8080 } });
  });

  it('keeps each machine\'s files under .uproxy and its program arguments out of a microvm kernel command line', () => {
    const line = toShell(vm.machines[0]!.command);
    expect(line).toContain('-serial file:/srv/demo/.uproxy/logs/backend-1.log');
    expect(line).toContain('-qmp unix:/srv/demo/.uproxy/vm/backend-1.qmp,server=on,wait=off');
    expect(line).not.toContain('--listen');
  });

  it('follows the configured subnet, bridge and memory', () => {
    const custom = planVmFleet(planFleet(config({ network: { bridge: 'br-test', subnet: '10.7.0.0/28' }, qemu: { memoryMiB: 128 } }), '/p'), inputs);
    expect(custom.network.bridge).toEqual({ name: 'br-test', address: '10.7.0.1/28' });
    expect(custom.machines.map((m) => m.address.ip)).toEqual(['10.7.0.3', '10.7.0.4', '10.7.0.5', '10.7.0.2']);
    expect(custom.machines[0]!.command.args[custom.machines[0]!.command.args.indexOf('-m') + 1]).toBe('128');
  });
});

describe('planVmFleet with unikraft guests', () => {
  const builds = {
    proxy: { kernel: '/srv/demo/proxy/.unikraft/build/proxy_qemu-x86_64' },
    backend: { kernel: '/srv/demo/backend/.unikraft/build/backend_qemu-x86_64', initrd: '/srv/demo/backend/.unikraft/build/initramfs-x86_64.cpio' },
  };
  const vm = planVmFleet(planFleet(config({ qemu: { guest: 'unikraft' } }), '/srv/demo', { backends: 2, runtime: 'qemu' }), {
    accel: 'tcg', stateDir: '/srv/demo/.uproxy', unikraft: builds,
  });
  const args = (name: string) => vm.machines.find((m) => m.name === name)!.command.args;
  const valueOf = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];

  it('boots each app\'s kraft-built kernel, with its initrd only when the build has one', () => {
    expect(valueOf(args('proxy'), '-kernel')).toBe(builds.proxy.kernel);
    expect(args('proxy')).not.toContain('-initrd');
    expect(valueOf(args('backend-2'), '-kernel')).toBe(builds.backend.kernel);
    expect(valueOf(args('backend-2'), '-initrd')).toBe(builds.backend.initrd);
    expect(vm.machines.every((m) => m.initramfs === undefined)).toBe(true);
  });

  it('gives the address as netdev.ip and the program arguments after " -- ", with -cpu max under TCG', () => {
    expect(valueOf(args('backend-1'), '-append')).toBe('demo-backend-1 netdev.ip=172.44.0.3/24:172.44.0.1::: -- --listen 172.44.0.3:8080 --name backend-1');
    const proxyLine = valueOf(args('proxy'), '-append')!;
    expect(proxyLine).toMatch(/^demo-proxy netdev\.ip=172\.44\.0\.2\/24:172\.44\.0\.1::: -- --listen 0\.0\.0\.0:8080 --admin 172\.44\.0\.2:8081 /);
    expect(proxyLine).toContain('--backend backend-2=172.44.0.4:8080');
    for (const m of vm.machines) expect(valueOf(m.command.args, '-cpu'), m.name).toBe('max');
  });

  it('gives each role the memory of the unikraft section, not the microvm default', () => {
    expect(valueOf(args('proxy'), '-m')).toBe('40');
    expect(valueOf(args('backend-1'), '-m')).toBe('12');
  });

  it('refuses a proxy command line longer than a Unikraft kernel parses', () => {
    const tokens = Array.from({ length: 200 }, (_, i) => ({ name: `t${i}`, sha256: hash }));
    const many = parseConfig(JSON.stringify({ name: 'demo', qemu: { guest: 'unikraft' }, proxy: { tokens, adminTokenSha256: hash } }), 'uproxy.json');
    expect(() => planVmFleet(planFleet(many, '/srv/demo', { runtime: 'qemu' }), { accel: 'tcg', stateDir: '/s', unikraft: builds }))
      .toThrow(/kernel command-line words but a native Unikraft kernel parses at most 256/);
  });
});

describe('an HTTPS proxy in a VM guest', () => {
  const https = (extra: Record<string, unknown> = {}) =>
    parseConfig(JSON.stringify({ name: 'demo', proxy: { tokens: [{ name: 'ci', sha256: hash }], adminTokenSha256: hash, publish: '10.1.2.3:443', tls: { mode: 'local-ca' } }, ...extra }), 'uproxy.json');
  const pem = '/srv/demo/.uproxy/tls/proxy.pem';
  const tlsCert = (argv: readonly string[]) => argv[argv.indexOf('--tls-cert') + 1];

  it('microvm: the certificate goes into the proxy\'s initramfs only, and --tls-cert names it there', () => {
    const vm = planVmFleet(planFleet(https(), '/srv/demo', { backends: 2, runtime: 'qemu' }), inputs);
    const proxy = vm.machines.at(-1)!;
    expect(proxy.initramfs).toEqual({ path: '/srv/demo/.uproxy/vm/proxy.cpio', program: '/srv/demo/proxy/build/uproxy-proxy-static', certificate: pem });
    expect(tlsCert(proxy.programArgs)).toBe('/uproxy/tls.pem');
    expect(vm.machines.filter((m) => m.role === 'backend').every((m) => m.initramfs?.certificate === undefined)).toBe(true);
    expect(vm.proxy.tls).toBe('local-ca');
  });

  it('unikraft: the proxy boots an initrd uproxy writes, built on the app\'s own initrd when it has one', () => {
    const builds = { proxy: { kernel: '/k/proxy', initrd: '/b/proxy.cpio' }, backend: { kernel: '/k/backend' } };
    const vm = planVmFleet(planFleet(https({ qemu: { guest: 'unikraft' } }), '/srv/demo', { backends: 1, runtime: 'qemu' }), { accel: 'tcg', stateDir: '/srv/demo/.uproxy', unikraft: builds });
    const proxy = vm.machines.at(-1)!;
    expect(proxy.initramfs).toEqual({ path: '/srv/demo/.uproxy/vm/proxy.cpio', base: '/b/proxy.cpio', certificate: pem });
    expect(proxy.command.args[proxy.command.args.indexOf('-initrd') + 1]).toBe('/srv/demo/.uproxy/vm/proxy.cpio');
    expect(proxy.command.args[proxy.command.args.indexOf('-append') + 1]).toContain('--tls-cert /uproxy/tls.pem');
    expect(vm.machines[0]!.command.args).not.toContain('-initrd');
  });

  it('kraft: the proxy runs with --rootfs of an initrd uproxy writes (on the elfloader app\'s own rootfs)', () => {
    for (const mode of ['native', 'elfloader'] as const) {
      const plan = planFleet(https({ unikraft: { mode } }), '/srv/demo', { backends: 1, runtime: 'kraft' });
      const kraft = planKraftFleet(plan, { kraftfileNames: { proxy: 'proxy', backend: 'backend' }, stateDir: '/srv/demo/.uproxy' });
      const proxy = kraft.machines.at(-1)!;
      expect(proxy.rootfs).toEqual({ path: '/srv/demo/.uproxy/kraft/proxy.cpio', base: mode === 'elfloader' ? '/srv/demo/proxy/.unikraft/build/initramfs-x86_64.cpio' : undefined, certificate: pem });
      expect(proxy.run.args[proxy.run.args.indexOf('--rootfs') + 1]).toBe('/srv/demo/.uproxy/kraft/proxy.cpio');
      expect(tlsCert(proxy.args)).toBe('/uproxy/tls.pem');
      expect(kraft.machines[0]!.run.args).not.toContain('--rootfs');
    }
  });

  it('names the proxy\'s bridge address and a published address in its certificate, not 0.0.0.0', () => {
    expect(proxyAddresses(planFleet(https(), '/p', { runtime: 'qemu' }))).toEqual(['172.44.0.2', '10.1.2.3']);
    expect(proxyAddresses(planFleet(https({ proxy: { tokens: [{ name: 'ci', sha256: hash }], adminTokenSha256: hash, publish: '0.0.0.0:443' } }), '/p', { runtime: 'kraft' }))).toEqual(['172.44.0.2']);
    expect(proxyAddresses(planFleet(https(), '/p', { runtime: 'host' }))).toEqual(['10.1.2.3']);
  });

  it('carries no key and no certificate when TLS is off', () => {
    const vm = planVmFleet(planFleet(config(), '/srv/demo', { backends: 1, runtime: 'qemu' }), inputs);
    expect(vm.machines.at(-1)!.programArgs).not.toContain('--tls-cert');
    expect(vm.machines.at(-1)!.initramfs?.certificate).toBeUndefined();
    expect(vm.proxy.tls).toBeUndefined();
  });
});

describe('moduleLoadOrder', () => {
  // The shape of Debian 6.1 cloud's modules.dep for the virtio NIC drivers.
  const modulesDep = [
    'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko',
    'kernel/net/core/failover.ko:',
    'kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_ring.ko:',
    'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_pci_legacy_dev.ko:',
    'kernel/drivers/virtio/virtio_pci_modern_dev.ko:',
  ].join('\n');

  it('puts every module after what it depends on, each once', () => {
    const order = moduleLoadOrder(modulesDep, ['virtio_pci', 'virtio_net']).map((p) => p.replace(/^.*\/|\.ko$/g, ''));
    expect(order).toEqual(['virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_ring', 'virtio', 'virtio_pci', 'failover', 'net_failover', 'virtio_net']);
  });

  it('names a module the kernel does not have', () => {
    expect(() => moduleLoadOrder(modulesDep, ['virtio_mmio'])).toThrow(/virtio_mmio \(needed by the guest NIC\) is not in modules.dep/);
  });
});
