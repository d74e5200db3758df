// Finds the Deployment this pod belongs to when SYNCER_DEPLOYMENT is unset, by following
// controller ownerReferences: this Pod → its ReplicaSet → that ReplicaSet's Deployment.
// Zero configuration is the normal case; the variable is the escape hatch.
import { KubeApiError, type KubeHttp } from './kube-http.js';
import { controllerOf, narrowMeta } from './objects.js';

export type Resolution =
  | { readonly ok: true; readonly deployment: string }
  /** The API call failed: worth retrying (the source backs off). */
  | { readonly ok: false; readonly retry: true; readonly resource: 'pods' | 'replicasets'; readonly error: KubeApiError }
  /** The objects say this pod is not part of a Deployment: retrying cannot help. */
  | { readonly ok: false; readonly retry: false; readonly message: string };

export async function resolveDeployment(http: KubeHttp, namespace: string, podName: string, signal: AbortSignal): Promise<Resolution> {
  const ns = encodeURIComponent(namespace);
  let pod: unknown;
  try {
    pod = await http.getJson(`/api/v1/namespaces/${ns}/pods/${encodeURIComponent(podName)}`, {}, signal);
  } catch (err) {
    return { ok: false, retry: true, resource: 'pods', error: asApiError(err) };
  }
  const podOwner = controllerOf(narrowMeta(pod) ?? noMeta);
  if (podOwner?.kind !== 'ReplicaSet') {
    return {
      ok: false,
      retry: false,
      message: `pod ${podName} is not controlled by a ReplicaSet (controller: ${podOwner ? `${podOwner.kind}/${podOwner.name}` : 'none'}); set SYNCER_DEPLOYMENT`,
    };
  }
  let rs: unknown;
  try {
    rs = await http.getJson(`/apis/apps/v1/namespaces/${ns}/replicasets/${encodeURIComponent(podOwner.name)}`, {}, signal);
  } catch (err) {
    return { ok: false, retry: true, resource: 'replicasets', error: asApiError(err) };
  }
  const rsOwner = controllerOf(narrowMeta(rs) ?? noMeta);
  if (rsOwner?.kind !== 'Deployment') {
    return {
      ok: false,
      retry: false,
      message: `ReplicaSet ${podOwner.name} of pod ${podName} is not controlled by a Deployment (controller: ${rsOwner ? `${rsOwner.kind}/${rsOwner.name}` : 'none'}); set SYNCER_DEPLOYMENT`,
    };
  }
  return { ok: true, deployment: rsOwner.name };
}

const noMeta = { name: '', uid: '', resourceVersion: '', labels: {}, annotations: {}, ownerReferences: [], deletionTimestamp: undefined };

function asApiError(err: unknown): KubeApiError {
  return err instanceof KubeApiError ? err : new KubeApiError(undefined, 'Error', String(err));
}
