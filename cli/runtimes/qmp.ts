/**
 * A client for QEMU's machine protocol (QMP) over the unix socket each machine is started
 * with: uproxy stops a machine through here (`quit`), and by signal only as the last resort
 * after that timed out.
 */
import { createConnection, type Socket } from 'node:net';

type Reply = { return: unknown } | { error: { class: string; desc: string } };

export class QmpError extends Error {}

export class QmpClient {
  private buffer = '';
  private readonly waiting: ((reply: Reply) => void)[] = [];
  private closedReason: Error | undefined;

  private constructor(private readonly socket: Socket, private readonly path: string) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('close', () => this.fail(new QmpError(`QMP connection ${path} closed`)));
    socket.on('error', (error) => this.fail(new QmpError(`QMP ${path}: ${error.message}`)));
  }

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async connect(path: string, timeoutMs = 5_000): Promise<QmpClient> {
    const socket = createConnection(path);
    await withTimeout(new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (error) => reject(new QmpError(`cannot connect to QMP socket ${path}: ${error.message}`)));
    }), timeoutMs, `connecting to QMP socket ${path}`).catch((error: unknown) => {
      socket.destroy();
      throw error;
    });
    const client = new QmpClient(socket, path);
    await client.execute('qmp_capabilities', undefined, timeoutMs);
    return client;
  }

  /** Runs one command; resolves with its `return` value, rejects with QEMU's error text. */
  private async execute(command: string, args?: Record<string, unknown>, timeoutMs = 5_000): Promise<unknown> {
    if (this.closedReason) throw this.closedReason;
    const reply = new Promise<Reply>((resolve) => this.waiting.push(resolve));
    this.socket.write(`${JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args })}\n`);
    const answer = await withTimeout(reply, timeoutMs, `QMP ${command} on ${this.path}`);
    if ('error' in answer) throw new QmpError(`QMP ${command}: ${answer.error.desc}`);
    return answer.return;
  }

  /** Ends QEMU at once; resolves when the process has closed the socket. */
  async quit(timeoutMs = 5_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    await this.execute('quit', undefined, timeoutMs).catch((error: unknown) => {
      // QEMU may close the socket before its reply arrives; that is the outcome we asked for.
      if (!(error instanceof QmpError) || !this.closedReason) throw error;
    });
    await withTimeout(closed, timeoutMs, `QEMU exiting after QMP quit on ${this.path}`);
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    for (let newline = this.buffer.indexOf('\n'); newline >= 0; newline = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line === '') continue;
      const message = JSON.parse(line) as Record<string, unknown>;
      if ('QMP' in message) continue;
      // Asynchronous events (SHUTDOWN, ...) are no replies; nothing here waits for one.
      if ('event' in message) continue;
      this.waiting.shift()?.(message as unknown as Reply);
    }
  }

  private fail(reason: Error): void {
    this.closedReason ??= reason;
    for (const answer of this.waiting.splice(0)) answer({ error: { class: 'Closed', desc: reason.message } });
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new QmpError(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
