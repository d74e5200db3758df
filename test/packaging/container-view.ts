// What a container of a created pod sees of its projected volumes (where the API credentials
// live), without a container runtime: each projected volume is written as the kubelet writes
// it (a TokenRequest bound to the pod, ConfigMap items, downward API fields), and a command
// runs in a private mount namespace (unshare) where a fresh tmpfs covers /run and each volume
// is bind-mounted read-only at the container's mountPath. Paths fixed in libraries
// (@kubernetes/client-node's in-cluster loader reads /var/run/secrets/kubernetes.io/serviceaccount)
// then resolve as in the pod, and the host's /run is untouched. Needs root (the tests run as
// root: setup installs nginx with apt-get). Only projected volumes are reproduced, and only
// under /run (/var/run links there): what a test of credentials needs.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { V1ConfigMap, V1Pod, V1VolumeProjection } from '@kubernetes/client-node';
import { errorMessage, type KubeClient } from './kube-apply.js';

export interface ViewMount {
  readonly source: string; // directory on this machine
  readonly target: string; // the container's mountPath
}

export interface ContainerView {
  /** argv prefix: the command after it runs with the container's view of its projected volumes. */
  readonly argv: readonly string[];
  readonly mounts: readonly ViewMount[];
  /** Removes the written volumes. */
  remove(): void;
}

const SAFE_PATH = /^\/[A-Za-z0-9._/-]+$/;

function fieldValue(pod: V1Pod, fieldPath: string): string {
  const values: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
  };
  const v = values[fieldPath];
  if (v === undefined) throw new Error(`downward API field ${fieldPath} is not played here`);
  return v;
}

/** Writes one projected source's files under dir, as the kubelet would. */
async function writeSource(client: KubeClient, pod: V1Pod, source: V1VolumeProjection, dir: string): Promise<void> {
  const ns = pod.metadata?.namespace ?? '';
  const write = (path: string, content: string): void => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  };
  if (source.serviceAccountToken !== undefined) {
    const sa = pod.spec?.serviceAccountName ?? 'default';
    const body = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: source.serviceAccountToken.audience === undefined ? [] : [source.serviceAccountToken.audience],
        expirationSeconds: source.serviceAccountToken.expirationSeconds ?? 3600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid },
      },
    };
    const r = await client.send('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, JSON.stringify(body));
    if (r.status !== 201) throw new Error(`TokenRequest for ${ns}/${sa}: HTTP ${r.status}: ${errorMessage(r.body)}`);
    write(source.serviceAccountToken.path, (JSON.parse(r.body) as { status: { token: string } }).status.token);
  } else if (source.configMap !== undefined) {
    const cm = await client.getJson<V1ConfigMap>(`/api/v1/namespaces/${ns}/configmaps/${source.configMap.name}`);
    const items = source.configMap.items ?? Object.keys(cm.data ?? {}).map((key) => ({ key, path: key }));
    for (const item of items) {
      const content = cm.data?.[item.key];
      if (content === undefined) throw new Error(`ConfigMap ${source.configMap.name} has no key ${item.key}`);
      write(item.path, content);
    }
  } else if (source.downwardAPI !== undefined) {
    for (const item of source.downwardAPI.items ?? []) {
      if (item.fieldRef === undefined) throw new Error(`downward API item ${item.path}: only fieldRef is played here`);
      write(item.path, fieldValue(pod, item.fieldRef.fieldPath));
    }
  } else {
    throw new Error(`projected source ${JSON.stringify(source)} is not played here`);
  }
}

/** The view of `container` in the created `pod`: its projected volumes written and mounted. */
export async function containerView(client: KubeClient, pod: V1Pod, container: string): Promise<ContainerView> {
  const spec = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === container);
  if (spec === undefined) throw new Error(`pod ${pod.metadata?.name} has no container ${container}`);
  const root = mkdtempSync(join(tmpdir(), 'apigw-view-'));
  if (!SAFE_PATH.test(root)) throw new Error(`temp dir ${root} is not a plain path`);
  const mounts: ViewMount[] = [];
  try {
    for (const m of spec.volumeMounts ?? []) {
      const volume = (pod.spec?.volumes ?? []).find((v) => v.name === m.name);
      if (volume?.projected === undefined) continue;
      if (!SAFE_PATH.test(m.mountPath) || !/^\/(var\/)?run\//.test(m.mountPath)) throw new Error(`mountPath ${m.mountPath}: only plain paths under /run are played here`);
      const source = join(root, m.name);
      mkdirSync(source);
      for (const s of volume.projected.sources ?? []) await writeSource(client, pod, s, source);
      mounts.push({ source, target: m.mountPath });
    }
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return {
    argv: mountedView(mounts),
    mounts,
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * argv prefix: the command after it runs in a private mount namespace where a fresh tmpfs covers
 * /run and each source directory is bind-mounted read-only at its target (a plain path under /run
 * or /var/run), as a container sees its projected volumes.
 */
export function mountedView(mounts: readonly ViewMount[]): string[] {
  for (const { source, target } of mounts) {
    if (!SAFE_PATH.test(source) || !SAFE_PATH.test(target) || !/^\/(var\/)?run\//.test(target)) throw new Error(`mount ${source} → ${target}: only plain paths, onto /run, are played here`);
  }
  const script = [
    'set -e',
    // A container's own /run, so mount points can be made without touching the host's.
    'mount -t tmpfs -o mode=0755 tmpfs /run',
    ...mounts.flatMap(({ source, target }) => [`mkdir -p ${target}`, `mount --bind ${source} ${target}`, `mount -o remount,bind,ro ${target}`]),
    'exec "$@"',
  ].join('\n');
  return ['unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'container-view'];
}
