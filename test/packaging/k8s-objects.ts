// Typed views of rendered objects. The JSON shape of these kinds is what client-node's model
// types describe, so a checked kind is enough to read them through those types.
import type { V1ConfigMap, V1Container, V1Deployment, V1EnvVar, V1NetworkPolicy, V1PodDisruptionBudget, V1PodSpec, V1Role, V1RoleBinding, V1Secret, V1Service, V1ServiceAccount } from '@kubernetes/client-node';
import type { KubeObject } from './helm.js';

interface Kinds {
  ConfigMap: V1ConfigMap;
  Deployment: V1Deployment;
  NetworkPolicy: V1NetworkPolicy;
  PodDisruptionBudget: V1PodDisruptionBudget;
  Role: V1Role;
  RoleBinding: V1RoleBinding;
  Secret: V1Secret;
  Service: V1Service;
  ServiceAccount: V1ServiceAccount;
}

export function ofKind<K extends keyof Kinds>(objects: readonly KubeObject[], kind: K): Kinds[K][] {
  return objects.filter((o) => o.kind === kind) as unknown as Kinds[K][];
}

/** The one object of that kind; throws when there are none or several. */
export function only<K extends keyof Kinds>(objects: readonly KubeObject[], kind: K): Kinds[K] {
  const found = ofKind(objects, kind);
  const first = found[0];
  if (found.length !== 1 || first === undefined) throw new Error(`expected exactly one ${kind}, found ${found.length}`);
  return first;
}

export function podSpec(objects: readonly KubeObject[]): V1PodSpec {
  const spec = only(objects, 'Deployment').spec?.template.spec;
  if (spec === undefined) throw new Error('Deployment has no pod spec');
  return spec;
}

/** Every container of the pod, init containers included, by name. */
export function allContainers(spec: V1PodSpec): Map<string, { container: V1Container; init: boolean }> {
  const out = new Map<string, { container: V1Container; init: boolean }>();
  for (const c of spec.initContainers ?? []) out.set(c.name, { container: c, init: true });
  for (const c of spec.containers) out.set(c.name, { container: c, init: false });
  return out;
}

export function envNames(container: V1Container): string[] {
  return (container.env ?? []).map((e) => e.name);
}

export function envVar(container: V1Container, name: string): V1EnvVar | undefined {
  return (container.env ?? []).find((e) => e.name === name);
}

/**
 * The environment a container would see: literal values, and fieldRefs resolved from the
 * given pod fields (metadata.name, metadata.namespace, status.podIP).
 */
export function resolveEnv(container: V1Container, fields: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef !== undefined) {
      const v = fields[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined) throw new Error(`env ${e.name}: no value given for fieldRef ${e.valueFrom.fieldRef.fieldPath}`);
      env[e.name] = v;
    } else throw new Error(`env ${e.name}: unsupported source ${JSON.stringify(e.valueFrom)}`);
  }
  return env;
}
