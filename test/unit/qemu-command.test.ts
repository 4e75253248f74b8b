import { describe, expect, it } from 'vitest';
import { toShell } from '../../cli/fleet/argv.js';
import { kernelCommandLine, qemuCommand, qemuProbeCommand, type QemuGuest } from '../../cli/fleet/qemu-command.js';

const base: QemuGuest = {
  name: 'demo-backend-1',
  kind: 'microvm',
  accel: 'tcg',
  board: 'pc',
  memoryMiB: 96,
  kernel: '/cache/vmlinuz',
  initrd: '/p/.uproxy/vm/backend-1.cpio',
  network: { tap: 'up1234-backend-1', mac: '02:11:22:33:44:55', ip: '172.44.0.3', prefix: 24, gateway: '172.44.0.1' },
  programArgs: [],
  qmpSocket: '/p/.uproxy/vm/backend-1.qmp',
  serialLog: '/p/.uproxy/logs/backend-1.log',
  pidFile: '/p/.uproxy/vm/backend-1.pid',
  daemonize: true,
};

/** The value following `flag` in argv. */
function valueOf(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

describe('qemuCommand for a microvm guest', () => {
  it('boots the kernel and initramfs with the address on the kernel command line', () => {
    const { file, args } = qemuCommand(base);
    expect(file).toBe('qemu-system-x86_64');
    expect(valueOf(args, '-machine')).toBe('pc,accel=tcg');
    expect(valueOf(args, '-m')).toBe('96');
    expect(valueOf(args, '-kernel')).toBe('/cache/vmlinuz');
    expect(valueOf(args, '-initrd')).toBe('/p/.uproxy/vm/backend-1.cpio');
    expect(valueOf(args, '-append')).toBe('console=ttyS0 panic=-1 uproxy.ip=172.44.0.3/24 uproxy.gw=172.44.0.1');
    expect(valueOf(args, '-netdev')).toBe('tap,id=net0,ifname=up1234-backend-1,script=no,downscript=no');
    expect(valueOf(args, '-device')).toBe('virtio-net-pci,netdev=net0,mac=02:11:22:33:44:55');
    expect(valueOf(args, '-serial')).toBe('file:/p/.uproxy/logs/backend-1.log');
    expect(valueOf(args, '-qmp')).toBe('unix:/p/.uproxy/vm/backend-1.qmp,server=on,wait=off');
    expect(valueOf(args, '-pidfile')).toBe('/p/.uproxy/vm/backend-1.pid');
    expect(args).toContain('-daemonize');
    expect(args).toContain('-no-reboot');
    expect(args).not.toContain('-cpu');
  });

  it('uses virtio-mmio and passes the TSC frequency on the microvm board', () => {
    const { args } = qemuCommand({ ...base, board: 'microvm', tscKhz: 2596130 });
    expect(valueOf(args, '-machine')).toBe('microvm,accel=tcg');
    expect(valueOf(args, '-device')).toMatch(/^virtio-net-device,/);
    expect(valueOf(args, '-append')).toMatch(/ tsc_early_khz=2596130$/);
  });

  it('refuses the microvm board under TCG without the TSC frequency, and too little memory', () => {
    expect(() => qemuCommand({ ...base, board: 'microvm' })).toThrow(/hangs at random under TCG/);
    expect(() => qemuCommand({ ...base, memoryMiB: 64 })).toThrow(/64 MiB is below the 72 MiB/);
  });

  it('selects KVM through the machine option, keeping the default CPU model', () => {
    const { args } = qemuCommand({ ...base, accel: 'kvm' });
    expect(valueOf(args, '-machine')).toBe('pc,accel=kvm');
    expect(args).not.toContain('-cpu');
  });
});

describe('qemuCommand for a unikraft guest', () => {
  const unikraft: QemuGuest = {
    ...base,
    kind: 'unikraft',
    memoryMiB: 16,
    initrd: undefined,
    kernel: '/p/proxy/.unikraft/build/proxy_qemu-x86_64',
    programArgs: ['--listen', '0.0.0.0:8080', '--backend', 'backend-1=172.44.0.3:8080'],
  };

  it('puts lwip\'s netdev.ip and the program arguments after " -- " on the kernel command line', () => {
    const { args } = qemuCommand(unikraft);
    expect(valueOf(args, '-append')).toBe('demo-backend-1 netdev.ip=172.44.0.3/24:172.44.0.1::: -- --listen 0.0.0.0:8080 --backend backend-1=172.44.0.3:8080');
    expect(valueOf(args, '-cpu')).toBe('max');
    expect(args).not.toContain('-initrd');
  });

  it('always has the " -- " separator, even without arguments', () => {
    expect(kernelCommandLine({ ...unikraft, programArgs: [] })).toBe('demo-backend-1 netdev.ip=172.44.0.3/24:172.44.0.1::: --');
  });

  it('rejects arguments a Unikraft command line cannot carry', () => {
    expect(() => qemuCommand({ ...unikraft, programArgs: ['a b'] })).toThrow(/cannot be passed on a Unikraft kernel command line/);
  });
});

describe('qemuProbeCommand', () => {
  it('boots the boot-sector probe on a bare pc with isa-debug-exit, and the Linux probe with its kernel and initrd', () => {
    expect(toShell(qemuProbeCommand('kvm', { image: '/t/probe.img', exitPort: 0xf4 }, '/t/serial.log'))).toBe(
      'qemu-system-x86_64 -machine pc,accel=kvm -m 16 -nodefaults -no-user-config -display none -serial file:/t/serial.log ' +
        '-drive file=/t/probe.img,format=raw,if=ide -device isa-debug-exit,iobase=244,iosize=4 -no-reboot',
    );
    expect(toShell(qemuProbeCommand('tcg', { kernel: '/k/vmlinuz', initrd: '/t/probe.cpio' }, '/t/serial.log'))).toBe(
      'qemu-system-x86_64 -machine pc,accel=tcg -m 96 -nodefaults -no-user-config -display none -serial file:/t/serial.log ' +
        "-kernel /k/vmlinuz -initrd /t/probe.cpio -append 'console=ttyS0 panic=-1' -no-reboot",
    );
  });
});
