// Installs rendered releases on the test control plane the way `helm install` would
// (dependencies first), with strict server-side validation, and waits for the pods the
// deployment controller creates from them.
import type { V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import type { KubeObject } from './helm.js';
import { errorMessage, type KubeClient } from './kube-apply.js';
import { WaitTimeout, waitFor } from '../support/wait.js';

// helm's install order for the kinds this chart renders.
const KIND_ORDER = ['Namespace', 'ServiceAccount', 'ConfigMap', 'Role', 'RoleBinding', 'Service', 'Deployment'];

export function installOrder(objects: readonly KubeObject[]): KubeObject[] {
  const rank = (o: KubeObject): number => {
    const i = KIND_ORDER.indexOf(o.kind);
    return i === -1 ? KIND_ORDER.length : i;
  };
  return [...objects].sort((a, b) => rank(a) - rank(b));
}

/** A namespace whose Pod Security admission enforces the "restricted" profile. */
export function restrictedNamespace(name: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      labels: {
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      },
    },
  };
}

export async function applyAll(client: KubeClient, objects: readonly KubeObject[]): Promise<void> {
  for (const o of installOrder(objects)) await client.apply(o);
}

/**
 * Waits until the Deployment's pods exist. On timeout the error carries the ReplicaSets'
 * failure conditions and the namespace's warning events, which is where admission refusals
 * (e.g. Pod Security) show up when the controller cannot create pods.
 */
export async function waitForPods(client: KubeClient, namespace: string, selector: string, count: number, timeoutMs = 30_000): Promise<V1Pod[]> {
  let seen = 0;
  try {
    return await waitFor(
      async () => {
        const pods = await client.list<V1Pod>('v1', 'Pod', namespace, selector);
        seen = pods.length;
        return pods.length >= count ? pods : undefined;
      },
      `${count} pods in ${namespace}`,
      { timeoutMs, intervalMs: 200 },
    );
  } catch (err) {
    if (!(err instanceof WaitTimeout)) throw err;
    const sets = await client.list<V1ReplicaSet>('apps/v1', 'ReplicaSet', namespace, selector);
    const failures = sets.flatMap((rs) => (rs.status?.conditions ?? []).map((c) => `${rs.metadata?.name}: ${c.type} ${c.reason ?? ''}: ${c.message ?? ''}`));
    const events = await client.send('GET', `/api/v1/namespaces/${namespace}/events?fieldSelector=type%3DWarning`);
    throw new Error(
      `only ${seen}/${count} pods in ${namespace} after ${timeoutMs} ms; ReplicaSets: ${sets.length}; ` +
        `conditions: ${failures.join(' | ') || '(none)'}; warning events: ${events.status === 200 ? warningText(events.body) : errorMessage(events.body)}`,
    );
  }
}

function warningText(body: string): string {
  const list = JSON.parse(body) as { items: { reason?: string; message?: string }[] };
  return list.items.map((e) => `${e.reason ?? ''}: ${e.message ?? ''}`).join(' | ') || '(none)';
}
