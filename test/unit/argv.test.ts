import { describe, expect, it } from 'vitest';
import { commandLine, renderOptions, toShell } from '../../cli/fleet/argv.js';

describe('renderOptions', () => {
  it('renders QEMU options with property lists, booleans as on/off and doubled commas', () => {
    const argv = renderOptions(
      {
        machine: { head: 'pc', props: { accel: 'tcg' } },
        m: 96,
        nographic: true,
        'no-reboot': false,
        netdev: { head: 'tap', props: { id: 'n0', ifname: 'uptap0', script: 'no', vhost: undefined } },
        qmp: { head: 'unix:/tmp/a,b.sock', props: { server: true, wait: false } },
        append: 'console=ttyS0 uproxy.ip=172.44.0.3/24',
      },
      '-',
    );
    expect(argv).toEqual([
      '-machine', 'pc,accel=tcg',
      '-m', '96',
      '-nographic',
      '-netdev', 'tap,id=n0,ifname=uptap0,script=no',
      '-qmp', 'unix:/tmp/a,,b.sock,server=on,wait=off',
      '-append', 'console=ttyS0 uproxy.ip=172.44.0.3/24',
    ]);
  });

  it('repeats array options once per element, in GNU style', () => {
    expect(renderOptions({ backend: ['a=127.0.0.1:1', 'b=127.0.0.1:2'], 'no-prompt': true }, '--')).toEqual([
      '--backend', 'a=127.0.0.1:1', '--backend', 'b=127.0.0.1:2', '--no-prompt',
    ]);
  });

  it('renders iproute2 keywords without a prefix', () => {
    const line = commandLine('ip', ['link', 'add'], renderOptions({ name: 'uproxy0', type: 'bridge' }, 'keyword'));
    expect(line).toEqual({ file: 'ip', args: ['link', 'add', 'name', 'uproxy0', 'type', 'bridge'] });
  });
});

describe('toShell', () => {
  it('quotes only what a shell would split or expand', () => {
    const line = toShell(commandLine('qemu-system-x86_64', renderOptions({ append: "a b 'c'", m: 96 }, '-'), ['$HOME']));
    expect(line).toBe(`qemu-system-x86_64 -append 'a b '\\''c'\\''' -m 96 '$HOME'`);
  });
});
