import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  cidrProblem,
  DEFAULT_NAMESPACE,
  DEFAULT_POD_NETWORK,
  namespaceProblem,
  readRegistry,
  SERVICE_TYPES,
  type ServiceType,
} from '../kubernetes/options.js';
import { projectDir } from './options.js';

interface KubernetesFlags {
  output?: string;
  namespace: string;
  registry: string;
  serviceType: ServiceType;
  podNetwork: string;
  force: boolean;
}

export function register(program: Command): void {
  const exportCommand = program.command('export').description('The fleet for another engine, rendered from the same plan as `up`');

  exportCommand
    .command('kubernetes')
    .description(
      'Write the fleet as Kubernetes objects (YAML, validated against the Kubernetes API schema): the proxy and its Services, the backends behind a headless Service, ' +
        'and the sync controller (`uproxy sync --kubernetes`) that adds their ready pods to the proxy through its admin API',
    )
    .option('-o, --output <dir>', 'where the YAML files go (default: k8s/ in the project)')
    .option('--namespace <ns>', 'the namespace of every object', valid(namespaceProblem), DEFAULT_NAMESPACE)
    .requiredOption('--registry <host/repo>', 'where the cluster pulls the images from, as `uproxy push` put them there: HOST[:PORT]/REPO such as 127.0.0.1:5000/uproxy', registry)
    .addOption(new Option('--service-type <type>', "how clients outside the cluster reach the proxy's client port").choices(SERVICE_TYPES).default('LoadBalancer'))
    .option(
      '--pod-network <cidr>',
      "the cluster's pod address range: the proxy accepts backends from the sync controller only there (the default covers k3s, kind, flannel, AKS and GKE; Calico and EKS need theirs)",
      valid(cidrProblem),
      DEFAULT_POD_NETWORK,
    )
    .option('--force', 'overwrite files in the directory that an export did not write', false)
    .addHelpText('after', '\nExamples:\n  $ uproxy export kubernetes --registry 127.0.0.1:5000/uproxy\n  $ uproxy export kubernetes -o deploy/ --namespace edge --registry ghcr.io/you --service-type NodePort')
    .action(async (flags: KubernetesFlags, command: Command) => {
      const { exportKubernetes, exportText } = await import('../core/export.js');
      const { output, ...options } = flags;
      process.stdout.write(exportText(await exportKubernetes(projectDir(command), { ...options, outDir: output })));
    });
}

function registry(value: string): string {
  const read = readRegistry(value);
  if ('problem' in read) throw new InvalidArgumentError(read.problem);
  return read.prefix;
}

/** A commander parser that refuses a value its check finds a problem with. */
function valid(problem: (value: string) => string | null): (value: string) => string {
  return (value) => {
    const why = problem(value);
    if (why !== null) throw new InvalidArgumentError(why);
    return value;
  };
}
