import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { KubernetesObject, ManifestFile } from './manifests.js';

/**
 * Checks rendered objects against the Kubernetes API's schema (kubernetes-models, generated
 * from its OpenAPI document) before anything is written, and the name and label rules that
 * schema does not carry. The objects come from uproxy.json through checks of their own, so a
 * problem found here is a bug of the renderer: it is thrown as one, listing every problem.
 */

const MODELS = { Deployment, Service, Secret, ServiceAccount, NetworkPolicy, Role, RoleBinding } as const;

/** DNS-1123 label (Services: also a DNS-1035 label, which a fleet name's leading letter makes every name here). */
const NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export function validateManifests(files: readonly ManifestFile[]): void {
  const problems = files.flatMap((file) => file.objects.flatMap((object) => objectProblems(object).map((problem) => `${file.name}: ${object.kind} ${object.metadata?.name ?? '(unnamed)'}: ${problem}`)));
  if (problems.length > 0) {
    throw new Error(`bug: uproxy rendered Kubernetes objects that are not valid (nothing was written; please report this with your uproxy.json):\n  ${problems.join('\n  ')}`);
  }
}

export function objectProblems(object: KubernetesObject): string[] {
  const problems: string[] = [];
  try {
    new MODELS[object.kind](object as never).validate();
  } catch (error) {
    const errors = (error as { errors?: { instancePath: string; message?: string }[] }).errors;
    problems.push(...(errors?.map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`) ?? [(error as Error).message]));
  }
  const name = object.metadata?.name ?? '';
  if (!NAME.test(name)) problems.push(`/metadata/name "${name}" is not a DNS-1123 label`);
  for (const [key, value] of Object.entries(object.metadata?.labels ?? {})) {
    if (!LABEL_VALUE.test(value)) problems.push(`/metadata/labels/${key} "${value}" is not a label value`);
  }
  return problems;
}
