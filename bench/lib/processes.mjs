// Starting, pinning and stopping the bench's own processes. Every process started here is
// tracked by PID and stopped by PID: on success, on error, and on Ctrl-C.
import { execa } from 'execa';
import net from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';

const running = new Set();

// The proxy under test gets one core, wrk and the backends the other, so the proxy's CPU
// figure is not blurred by the load generator competing for the same core.
export const PROXY_CPU = '1';
export const LOAD_CPU = '0';

// Runs argv pinned to a core with the fd limit raised in the child shell only.
// `exec` keeps the PID the harness sees equal to the service's own PID.
// With `pipe`, stdin and stdout are pipes the caller talks through (stderr still goes to logFile).
export function startPinned(name, cpu, argv, { logFile, fdLimit = 20000, env, pipe = false } = {}) {
  const script = `ulimit -n ${fdLimit} && exec taskset -c ${cpu} "$@"`;
  const child = execa('sh', ['-c', script, 'sh', ...argv], {
    detached: true,
    reject: false,
    stdin: pipe ? 'pipe' : 'ignore',
    stdout: pipe ? 'pipe' : logFile ? { file: logFile, append: true } : 'ignore',
    stderr: logFile ? { file: logFile, append: true } : 'ignore',
    env,
    forceKillAfterDelay: 3000,
  });
  const proc = { name, pid: child.pid, child, exited: false, exitCode: undefined };
  child.then((result) => {
    proc.exited = true;
    proc.exitCode = result.exitCode ?? result.signal;
    running.delete(proc);
  });
  running.add(proc);
  return proc;
}

export async function stop(proc, timeoutMs = 5000) {
  if (!proc || proc.exited) return;
  proc.child.kill('SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (!proc.exited && Date.now() < deadline) await sleep(50);
  if (!proc.exited) {
    proc.child.kill('SIGKILL');
    await Promise.race([proc.child, sleep(2000)]);
  }
  running.delete(proc);
}

export async function stopAll() {
  await Promise.all([...running].map((proc) => stop(proc)));
}

// Last resort when Node exits without running the async cleanup (e.g. an uncaught throw).
process.on('exit', () => {
  for (const proc of running) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Asks the kernel for free ports; each is closed again before the service binds it.
export async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      servers.push(server);
    }
    return servers.map((server) => server.address().port);
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

export async function waitForPort(port, proc, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc?.exited) throw new Error(`${proc.name} exited (code ${proc.exitCode}) before listening on ${port}`);
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`${proc?.name ?? 'service'} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// A service such as nginx forks workers: its CPU and memory are those of the whole tree.
export function processTree(rootPid) {
  const parents = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(Number(entry));
    if (stat) parents.set(Number(entry), stat.ppid);
  }
  const tree = [rootPid];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  }
  return tree;
}

export function readProcStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), utime: Number(fields[11]), stime: Number(fields[12]) };
}
