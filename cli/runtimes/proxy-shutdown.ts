/**
 * Stopping a proxy that runs in a VM (qemu and kraft runtimes), which no signal reaches: it is
 * asked over its admin API to drain and exit (`POST /shutdown`: stop accepting, finish what is
 * in flight, close every client and pooled upstream connection with a FIN, exit 0), and its
 * machine then ends by itself, since the guest powers off once its program exits: the microVM
 * init runs `poweroff -f`, and Unikraft 0.16.3 powers the machine off when main returns, as the
 * proxy's does (ukboot's ukplat_terminate; an exit() call would not: exit_group ends every
 * thread, the one that would power off too). QEMU then exits. Only a machine still there at
 * the deadline is stopped hard by the caller (QMP `quit`, `kraft stop`).
 *
 * No ACPI power-down: it would reach the guest's kernel, not the proxy (busybox's init and
 * Unikraft's shutdown handler end the machine without draining the program), while the
 * shutdown route drains the proxy itself and the power-off follows from its exit.
 */
import type { MachineState } from '../fleet/state.js';
import { requestShutdown } from '../stats/client.js';
import { sleep } from './processes.js';

/** How long the proxy gets to accept the request; a proxy that cannot answer that fast is stopped hard. */
const REQUEST_TIMEOUT_MS = 2_000;
const POLL_MS = 50;

/**
 * Asks the proxy machine to shut down and waits until `gone` says its machine ended, at most
 * until `deadline` (ms since the epoch). Resolves true when it ended by itself; false when it
 * could not be asked (no admin address recorded, no answer, a proxy without the route) or was
 * still there at the deadline.
 */
export async function shutdownProxy(machine: MachineState, adminToken: string, gone: () => boolean | Promise<boolean>, deadline: number): Promise<boolean> {
  if (machine.role !== 'proxy' || machine.admin === undefined) return false;
  const asked = await requestShutdown({ url: `http://${machine.admin}`, token: adminToken }, REQUEST_TIMEOUT_MS).catch(() => false);
  if (!asked) return false;
  while (Date.now() < deadline) {
    if (await gone()) return true;
    await sleep(POLL_MS);
  }
  return gone();
}
