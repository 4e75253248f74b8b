/**
 * Where things live inside a guest's initrd: the initramfs uproxy writes (runtimes/initramfs.ts),
 * the init that reads it (runtimes/guest-init.ts), and the proxy's arguments (vm-plan.ts).
 */
export const GUEST_PATHS = {
  modulesDir: 'lib/modules',
  moduleList: 'uproxy/modules',
  program: 'uproxy/program',
  args: 'uproxy/args',
  /**
   * The proxy's certificate chain and key, the one way its private key reaches a guest: in the
   * boot image, never on a command line or over the bridge (a renewal sends only the chain).
   */
  certificate: 'uproxy/tls.pem',
} as const;

