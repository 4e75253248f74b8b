import { isIP } from 'node:net';
import { parseRegistry } from '../oci/skopeo.js';

/**
 * The options of `uproxy export kubernetes`, their defaults and the rules their values follow,
 * as pure checks that say why a value is wrong. Kept free of heavy imports, since the command
 * file that parses them is loaded on every start of the CLI.
 */

export const SERVICE_TYPES = ['LoadBalancer', 'NodePort'] as const;
export type ServiceType = (typeof SERVICE_TYPES)[number];

export const DEFAULT_NAMESPACE = 'default';

/**
 * Where pod addresses come from, which is the only place the sync controller may point the
 * proxy's backends (--backend-network). 10.0.0.0/8 holds the defaults of k3s (10.42.0.0/16),
 * kind, kubeadm with flannel and AKS (10.244.0.0/16) and GKE; Calico's default 192.168.0.0/16
 * and EKS's VPC ranges are outside it and need --pod-network.
 */
export const DEFAULT_POD_NETWORK = '10.0.0.0/8';

export interface KubernetesOptions {
  namespace: string;
  /** `HOST[:PORT]/REPO` the cluster pulls the fleet's images from. */
  registry: string;
  serviceType: ServiceType;
  /** CIDR of the cluster's pod addresses. */
  podNetwork: string;
}

/** A namespace name is a DNS-1123 label. */
export function namespaceProblem(value: string): string | null {
  if (/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value)) return null;
  return 'expected a Kubernetes namespace name: 1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit';
}

/** `--registry` as `uproxy push` reads it (oci/skopeo.ts): the prefix image names go under, or why the value is none. */
export function readRegistry(value: string): { prefix: string } | { problem: string } {
  if (/^[a-z]+:\/\//i.test(value)) return { problem: 'expected HOST[:PORT]/REPO without a scheme, such as 127.0.0.1:5000/uproxy or ghcr.io/you' };
  const registry = parseRegistry(value);
  if (registry === null) return { problem: 'expected HOST[:PORT]/REPO as in an image name, such as 127.0.0.1:5000/uproxy or ghcr.io/you (the path in lower case)' };
  return { prefix: registry.prefix };
}

export function cidrProblem(value: string): string | null {
  const [address = '', prefix, ...rest] = value.split('/');
  const family = isIP(address);
  const max = family === 4 ? 32 : 128;
  if (family !== 0 && rest.length === 0 && prefix !== undefined && /^\d{1,3}$/.test(prefix) && Number(prefix) <= max) return null;
  return 'expected the pods\' address range in CIDR form, such as 10.42.0.0/16 (IPv4 or IPv6, with a prefix length)';
}
