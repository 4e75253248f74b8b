/**
 * The /init of a `microvm` guest: a busybox shell script that loads the virtio-net driver,
 * takes its address from the kernel command line (`uproxy.ip=`, `uproxy.gw=`) and runs the
 * program, powering the machine off when it ends (exit, crash, or a proxy's POST /shutdown):
 * QEMU then exits, so uproxy sees the machine gone and `up` replaces it, and a stop waits for
 * that instead of a hard QMP `quit` (a kernel panic reboots, which -no-reboot also turns into
 * QEMU's exit). Everything it prints goes to the serial console, i.e. `.uproxy/logs/<name>.log`,
 * which is what `up` shows when a machine does not come up.
 */
import { GUEST_PATHS } from '../fleet/guest-paths.js';

export function guestInit(): string {
  return `#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The archive has no /dev/console node, so the kernel could not give init a console.
exec </dev/console >/dev/console 2>&1

fail() { echo "uproxy-init: $*"; exec poweroff -f; }

while read -r module; do
  insmod /${GUEST_PATHS.modulesDir}/"$module" || fail "cannot load kernel module $module"
done < /${GUEST_PATHS.moduleList}

for word in $(cat /proc/cmdline); do
  case "$word" in
    uproxy.ip=*) address="\${word#uproxy.ip=}" ;;
    uproxy.gw=*) gateway="\${word#uproxy.gw=}" ;;
  esac
done
[ -n "$address" ] || fail "no uproxy.ip= on the kernel command line"

# The only NIC; the kernel names it eth0 as soon as virtio_net is loaded.
ip link set lo up
ip link set eth0 up || fail "no network interface eth0 (virtio-net not found)"
ip addr add "$address" dev eth0 || fail "cannot set address $address"
[ -z "$gateway" ] || ip route add default via "$gateway" || fail "cannot route via $gateway"
echo "uproxy-init: eth0 $address via $gateway"

set --
while IFS= read -r arg; do set -- "$@" "$arg"; done < /${GUEST_PATHS.args}
echo "uproxy-init: starting /${GUEST_PATHS.program}"
# Not exec'd: when the program ends, its exit status reaches the serial log (which \`up\`
# shows) instead of a kernel panic about init.
/${GUEST_PATHS.program} "$@"
fail "/${GUEST_PATHS.program} exited with status $?"
`;
}
