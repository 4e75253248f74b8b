/**
 * The Kubernetes credentials, found as kubectl and client-node find them: KUBECONFIG, else
 * ~/.kube/config, else the pod's service account (in a cluster). client-node itself would fall
 * back to http://localhost:8080 when there is none, and fail later with a connection error that
 * does not say why: here that is an error up front.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { UserError } from '../../errors.js';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface LoadedKubeconfig {
  kc: KubeConfig;
  /** Where it came from, for the log. */
  source: string;
  /** The API server. */
  server: string;
}

export function loadKubeconfig(env: NodeJS.ProcessEnv = process.env): LoadedKubeconfig {
  const source = env.KUBECONFIG ? `KUBECONFIG=${env.KUBECONFIG}`
    : existsSync(join(homedir(), '.kube', 'config')) ? '~/.kube/config'
      : existsSync(SERVICE_ACCOUNT_TOKEN) && env.KUBERNETES_SERVICE_HOST ? 'in-cluster service account'
        : undefined;
  if (source === undefined) {
    throw new UserError('no Kubernetes credentials: set KUBECONFIG, or write ~/.kube/config, or run `uproxy sync` in a pod, which uses its service account');
  }
  const kc = new KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (error) {
    throw new UserError(`cannot read the Kubernetes credentials (${source}): ${(error as Error).message}`);
  }
  const cluster = kc.getCurrentCluster();
  if (cluster === null) {
    throw new UserError(`the kubeconfig (${source}) has no current context naming a cluster: pick one with \`kubectl config use-context NAME\``);
  }
  return { kc, source, server: cluster.server };
}
