// Readings from /proc: a process tree's CPU time and RSS, and the machine's CPU use, so that
// a run's "other load" (CPU used by anything that is not part of the bench) can be measured.
import { readFileSync } from 'node:fs';
import { readProcStat } from './processes.mjs';

// USER_HZ is 100 on every Linux we run on; /proc/<pid>/stat counts in these ticks.
const TICKS_PER_SECOND = 100;

export function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readProcStat(pid);
    if (stat) ticks += stat.utime + stat.stime;
  }
  return ticks / TICKS_PER_SECOND;
}

// User-mode share of cpuSeconds(): tells proxy work apart from kernel (socket) work.
export function userCpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) ticks += readProcStat(pid)?.utime ?? 0;
  return ticks / TICKS_PER_SECOND;
}

export function rssKiB(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) total += Number(match[1]);
    } catch {
      // the process exited between listing and reading
    }
  }
  return total;
}

// Busy time in user and system mode, over all cores and per core ("cpu0", "cpu1", ...).
// Interrupt and softirq time are left out: the kernel may charge loopback network work there
// instead of to the bench's processes.
export function machineBusySeconds() {
  const perCore = {};
  let busy = 0;
  let steal = 0;
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const match = /^(cpu\d*)\s+(.*)$/.exec(line);
    if (!match) continue;
    const [user, nice, system, , , , , st] = match[2].split(/\s+/).map(Number);
    const seconds = (user + nice + system) / TICKS_PER_SECOND;
    if (match[1] === 'cpu') {
      busy = seconds;
      steal = (st ?? 0) / TICKS_PER_SECOND;
    } else {
      perCore[match[1]] = seconds;
    }
  }
  return { busy, steal, perCore };
}

export function loadAverage() {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}
