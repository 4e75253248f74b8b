import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';

/**
 * A real ACME CA for tests: Debian's pebble (Let's Encrypt's test server) and its
 * pebble-challtestsrv as the DNS server pebble asks, which answers every name with 127.0.0.1,
 * so pebble validates challenges against the proxy on loopback and nothing leaves this host.
 * Debian ships no certificate for pebble's own HTTPS listener: one is made here with openssl,
 * and clients trust it through NODE_EXTRA_CA_CERTS (`caFile`). Both processes are stopped by PID.
 */

export interface PebbleOptions {
  /** Where pebble validates http-01: the proxy's plain listener port. */
  httpPort: number;
  /** Where pebble validates tls-alpn-01: the proxy's client port. */
  tlsPort: number;
  /** Lifetime of the certificates pebble issues, seconds (its default: 5 years). */
  validitySeconds?: number;
  /** Percentage of good nonces pebble rejects as bad (PEBBLE_WFE_NONCEREJECT; pebble's default 5). */
  nonceRejectPercent?: number;
}

export interface Pebble {
  directoryUrl: string;
  /** The certificate of pebble's own HTTPS listener: what NODE_EXTRA_CA_CERTS must name for a client of the directory. */
  caFile: string;
  /** The root pebble signs certificates under (fresh at every start), from its management API. */
  root(): Promise<string>;
  /** pebble's log so far. */
  log(): string;
  stop(): Promise<void>;
}

export async function startPebble(dir: string, options: PebbleOptions): Promise<Pebble> {
  const [listen, management, dns, dnsManagement] = await freePorts(4);
  const certFile = join(dir, 'pebble-listener.pem');
  const keyFile = join(dir, 'pebble-listener.key');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=pebble listener',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  const configFile = join(dir, 'pebble-config.json');
  writeFileSync(configFile, JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${listen}`,
      managementListenAddress: `127.0.0.1:${management}`,
      certificate: certFile,
      privateKey: keyFile,
      httpPort: options.httpPort,
      tlsPort: options.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      ...(options.validitySeconds === undefined ? {} : { certificateValidityPeriod: options.validitySeconds }),
    },
  }));
  const logFile = join(dir, `pebble-${listen}.log`);
  const children: ChildProcess[] = [];
  const started = (command: string, args: string[], env: Record<string, string> = {}): ChildProcess => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = createWriteStream(logFile, { flags: 'a' });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    children.push(child);
    return child;
  };
  // Only DNS: its challenge servers stay off, the proxy answers the challenges. No AAAA, so pebble dials 127.0.0.1.
  started('pebble-challtestsrv', ['-dns01', `127.0.0.1:${dns}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${dnsManagement}`, '-defaultIPv6', '', '-defaultIPv4', '127.0.0.1']);
  started('pebble', ['-config', configFile, '-dnsserver', `127.0.0.1:${dns}`], {
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: String(options.nonceRejectPercent ?? 5),
    // One authorization per order: a reused one would skip the challenge the test means to see.
    PEBBLE_AUTHZREUSE: '0',
  });
  const ca = readFileSync(certFile, 'utf8');
  const fetchText = (url: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      get(url, { ca, timeout: 5000 }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      }).on('error', reject);
    });
  const directoryUrl = `https://127.0.0.1:${listen}/dir`;
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    })));
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    const exited = children.find((child) => child.exitCode !== null);
    if (exited) {
      await stop();
      throw new Error(`pebble or its DNS server exited at start: ${existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''}`);
    }
    try {
      if ((await fetchText(directoryUrl)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`pebble did not serve ${directoryUrl} within 15 s: ${readFileSync(logFile, 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    directoryUrl,
    caFile: certFile,
    root: async () => (await fetchText(`https://127.0.0.1:${management}/roots/0`)).body,
    log: () => readFileSync(logFile, 'utf8'),
    stop,
  };
}

/** Distinct ports free on 127.0.0.1 now. */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        const { port: p } = server.address() as { port: number };
        server.close(() => resolve(p));
      });
    });
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}
