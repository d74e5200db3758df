// Fixtures for discovery tests against a real control plane: the roles/ RBAC applied as the
// cluster admin would, a Deployment the fake kubelet runs, and the operations scenarios need.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect, createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  loadAllYaml,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1Pod,
} from '@kubernetes/client-node';
import type { ControlPlane } from './control-plane.js';
import { FakeKubelet, type FakeKubeletOptions } from './fake-kubelet.js';
import { repoRoot } from './repo-root.js';
import { waitFor } from './wait.js';

export const SA_NAME = 'apigw-syncer';

export interface Cluster {
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly kubelet: FakeKubelet;
  readonly namespace: string;
  /** A kubeconfig holding a token of the ServiceAccount roles/rbac.yaml binds. */
  readonly sidecarKubeconfig: string;
}

/** Namespace, roles/rbac.yaml (namespace rewritten), fake kubelet, and the sidecar's kubeconfig. */
export async function setupCluster(cp: ControlPlane, namespace: string, ipPrefix: string, kubeletOptions: FakeKubeletOptions = {}): Promise<Cluster> {
  const kc = cp.adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await applyManifests(kc, readFileSync(join(repoRoot(), 'roles', 'rbac.yaml'), 'utf8'), namespace);
  const kubelet = new FakeKubelet(kc, namespace, ipPrefix, kubeletOptions);
  await kubelet.start();
  const sidecarKubeconfig = await cp.kubeconfigFor({ namespace, name: SA_NAME });
  return { kc, core, apps, kubelet, namespace, sidecarKubeconfig };
}

/** Creates every object of a multi-document YAML, as `kubectl create -n <namespace> -f` would. */
export async function applyManifests(kc: KubeConfig, yamlText: string, namespace: string): Promise<void> {
  const client = KubernetesObjectApi.makeApiClient(kc);
  for (const doc of loadAllYaml(yamlText) as (KubernetesObject & { subjects?: { namespace?: string }[] })[]) {
    if (doc === null || doc === undefined) continue;
    doc.metadata = { ...doc.metadata, namespace };
    for (const s of doc.subjects ?? []) if (s.namespace !== undefined) s.namespace = namespace;
    await client.create(doc);
  }
}

export async function createDeployment(c: Cluster, name: string, replicas: number, labels: Record<string, string> = { app: name }): Promise<void> {
  await c.apps.createNamespacedDeployment({
    namespace: c.namespace,
    body: {
      metadata: { name },
      spec: {
        replicas,
        selector: { matchLabels: labels },
        // Fast rollouts: one extra pod at a time, none unavailable, no minReadySeconds.
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        template: {
          metadata: { labels },
          spec: { containers: [{ name: 'nginx', image: 'example.invalid/apigw:1' }], terminationGracePeriodSeconds: 0 },
        },
      },
    },
  });
}

export function isReady(p: V1Pod): boolean {
  return p.metadata?.deletionTimestamp === undefined && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True') && Boolean(p.status?.podIP);
}

export async function pods(c: Cluster, labelSelector: string): Promise<V1Pod[]> {
  return (await c.core.listNamespacedPod({ namespace: c.namespace, labelSelector })).items;
}

/** Waits (deadline 30 s) until exactly `count` pods labelled app=<deployment> are ready; resolves with them. */
export function waitForReadyPods(c: Cluster, deployment: string, count: number): Promise<V1Pod[]> {
  return waitFor(
    async () => {
      const ready = (await pods(c, `app=${deployment}`)).filter(isReady);
      return ready.length === count ? ready : undefined;
    },
    `${count} ready pods`,
    { timeoutMs: 30_000, intervalMs: 50, retryOnError: true },
  );
}

export async function scaleTo(c: Cluster, name: string, replicas: number): Promise<void> {
  await c.apps.patchNamespacedDeploymentScale(
    { namespace: c.namespace, name, body: { spec: { replicas } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/** Changes the pod template, which makes the Deployment controller roll out a new ReplicaSet. */
export async function rollout(c: Cluster, name: string, value: string): Promise<void> {
  await c.apps.patchNamespacedDeployment(
    { namespace: c.namespace, name, body: { spec: { template: { metadata: { annotations: { 'test/rollout': value } } } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/** Sets the pod-deletion-cost annotation, so a scale-down removes this pod first. */
export async function markForScaleDown(c: Cluster, pod: string): Promise<void> {
  await c.core.patchNamespacedPod(
    { namespace: c.namespace, name: pod, body: { metadata: { annotations: { 'controller.kubernetes.io/pod-deletion-cost': '-1000' } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/**
 * A TCP proxy to the API server that can black-hole traffic: while frozen, bytes are dropped in
 * both directions and new connections are accepted but go nowhere, with nothing closed, like a
 * half-open path after a node or NAT failure. thaw() resets the frozen connections (as peers do
 * once the path returns) and forwards again.
 */
export class BlackholeProxy {
  frozen = false;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket | undefined; stale: boolean }>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: URL): Promise<BlackholeProxy> {
    if (target.hostname !== '127.0.0.1') throw new Error(`refusing non-loopback target ${target.href}`);
    const server = createNetServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const proxy = new BlackholeProxy(server, (server.address() as AddressInfo).port);
    server.on('connection', (client: Socket) => {
      const pair = { client, upstream: undefined as Socket | undefined, stale: proxy.frozen };
      proxy.pairs.add(pair);
      client.on('error', () => undefined);
      client.on('close', () => {
        pair.upstream?.destroy();
        proxy.pairs.delete(pair);
      });
      if (proxy.frozen) return; // accepted, never connected: the handshake hangs
      const upstream = connect(Number(target.port), '127.0.0.1');
      pair.upstream = upstream;
      // A black hole forwards no FIN or RST either: a frozen client socket stays open.
      upstream.on('error', () => void (!pair.stale && client.destroy()));
      upstream.on('close', () => void (!pair.stale && client.destroy()));
      client.on('data', (d: Buffer) => void (!proxy.frozen && upstream.write(d)));
      upstream.on('data', (d: Buffer) => void (!proxy.frozen && client.write(d)));
    });
    return proxy;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  freeze(): void {
    this.frozen = true;
    for (const p of this.pairs) p.stale = true;
  }

  thaw(): void {
    this.frozen = false;
    for (const p of this.pairs) {
      if (!p.stale) continue;
      p.client.resetAndDestroy();
      p.upstream?.destroy();
    }
  }

  async stop(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** GETs a path as the kubeconfig's user (e.g. /readyz as the sidecar's ServiceAccount); resolves with the status. */
export async function getAs(kc: KubeConfig, path: string, timeoutMs = 2_000): Promise<number> {
  const server = kc.getCurrentCluster()?.server ?? '';
  const url = new URL(path, server);
  if (url.hostname !== '127.0.0.1') throw new Error(`refusing non-loopback API server ${server}`);
  const options: RequestOptions = { method: 'GET', timeout: timeoutMs, agent: false };
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, options, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The same credentials, through another server URL (the proxy). */
export function viaServer(kc: KubeConfig, server: string): KubeConfig {
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: kc.clusters.map((c) => ({ ...c, server })),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return out;
}
