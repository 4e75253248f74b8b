import type { Command } from 'commander';
import { UserError } from '../errors.js';
import { seconds } from './options.js';

interface SyncOptions {
  kubernetes: boolean;
  namespace?: string;
  service?: string;
  portName?: string;
  adminUrl?: string;
  adminTokenFile?: string;
  healthListen?: string;
  drainTimeout: number;
}

export function register(program: Command): void {
  program
    .command('sync')
    .description("Keep a running proxy's backends in step with a Kubernetes Service's ready endpoints (its EndpointSlices), through the proxy's admin API, until stopped")
    .option('--kubernetes', 'take the endpoints from Kubernetes (required: the only source so far)', false)
    .option('--namespace <namespace>', "the Service's namespace")
    .option('--service <name>', 'the Service whose ready endpoints become the backends (its pods are named after them)')
    .option('--port-name <name>', "which of the Service's ports to route to, when it has several")
    .option('--admin-url <url>', "the proxy's admin listener, http://HOST:PORT")
    .option('--admin-token-file <file>', 'file holding the admin token (read once; never logged)')
    .option('--health-listen <address:port>', 'serve GET /healthz here: 200 while the watch is established and the last sync succeeded, else 503 with why')
    .option('--drain-timeout <seconds>', 'how long a backend whose endpoint is gone may drain before the proxy is told to remove it (it still lets requests in flight finish)', seconds, 30)
    .addHelpText('after', [
      '',
      'Credentials: KUBECONFIG, else ~/.kube/config, else the pod\'s service account (get, list and watch on endpointslices).',
      'Logs one logfmt line per change on stdout; stops on SIGTERM or SIGINT.',
      '',
      'Example:',
      '  $ uproxy sync --kubernetes --namespace shop --service api --admin-url http://uproxy-admin:9090 \\',
      '      --admin-token-file /var/run/uproxy/admin-token --health-listen 0.0.0.0:8090',
    ].join('\n'))
    .action(async (options: SyncOptions) => {
      if (!options.kubernetes) throw new UserError('uproxy sync needs a source of endpoints: add --kubernetes (the only one so far)');
      const required: [string, string | undefined][] = [
        ['--namespace', options.namespace],
        ['--service', options.service],
        ['--admin-url', options.adminUrl],
        ['--admin-token-file', options.adminTokenFile],
      ];
      const missing = required.filter(([, value]) => value === undefined).map(([flag]) => flag);
      if (missing.length > 0) throw new UserError(`uproxy sync --kubernetes needs ${missing.join(', ')}`);
      const { syncFromKubernetes } = await import('../core/sync.js');
      const stop = new AbortController();
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => stop.abort());
      await syncFromKubernetes(
        {
          namespace: options.namespace!,
          service: options.service!,
          portName: options.portName,
          adminUrl: options.adminUrl!,
          adminTokenFile: options.adminTokenFile!,
          healthListen: options.healthListen,
          drainTimeoutMs: options.drainTimeout * 1000,
        },
        { write: (line) => process.stdout.write(`${line}\n`), signal: stop.signal },
      );
    });
}
