// Plays the kubelet (and the scheduler) for one namespace, since the test control plane
// runs neither: binds every new pod to the Node 'fake-node' (pods/binding), marks it
// Running + Ready with a unique loopback IP from ipPrefix (.10, .11, ...), and finishes
// graceful deletions with a grace-0 delete, as a kubelet would once containers stopped.
//
// Level-triggered: a pod watch (bounded, restarted with backoff, so it survives
// kube-apiserver outages) only triggers a reconcile, which lists pods with the typed
// client and fixes whatever is not in the desired state.
import { ApiException, CoreV1Api, Watch, type KubeConfig, type V1Pod, type V1PodCondition, type V1ContainerStatus } from '@kubernetes/client-node';
import { sleep } from './wait.js';

export const FAKE_NODE_NAME = 'fake-node';

export interface FakeKubeletOptions {
  /** Called with diagnostics (errors retried, pods handled). Default: silent. */
  log?: (msg: string) => void;
  /**
   * Runs before a new pod is marked Running (and Ready) at its IP, as its containers would start
   * before the readiness probe passes: e.g. an nginx listening on that IP. A rejection is retried
   * with the reconcile, so it must be idempotent.
   */
  beforeRunning?: (pod: { readonly name: string; readonly ip: string }) => Promise<void>;
}

function isApiCode(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

export class FakeKubelet {
  private readonly core: CoreV1Api;
  private readonly watch: Watch;
  private readonly log: (msg: string) => void;
  private readonly beforeRunning: NonNullable<FakeKubeletOptions['beforeRunning']>;
  private running = false;
  private watchAbort: AbortController | undefined;
  private watchLoopDone: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  /** Serializes every API write this kubelet does. */
  private queue: Promise<void> = Promise.resolve();
  private reconcileQueued = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private nextHost = 10;
  private readonly ipByUid = new Map<string, string>();
  private readonly uidByName = new Map<string, string>();
  /** Readiness overrides from setReady(), by pod name. */
  private readonly readiness = new Map<string, boolean>();

  constructor(
    kc: KubeConfig,
    readonly namespace: string,
    readonly ipPrefix: string,
    opts: FakeKubeletOptions = {},
  ) {
    if (!/^127\.\d{1,3}\.\d{1,3}\.$/.test(ipPrefix)) throw new Error(`ipPrefix must be a loopback /24 prefix like '127.0.3.', got ${ipPrefix}`);
    this.core = kc.makeApiClient(CoreV1Api);
    this.watch = new Watch(kc);
    this.log = opts.log ?? (() => undefined);
    this.beforeRunning = opts.beforeRunning ?? (async () => undefined);
  }

  /** Ensures the fake Node exists and is Ready, reconciles existing pods, then keeps watching. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await ensureFakeNode(this.core);
    await this.enqueue(() => this.reconcile());
    this.watchLoopDone = this.watchLoop();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.watchAbort?.abort();
    this.wake?.();
    await this.watchLoopDone;
    await this.queue;
  }

  /** The IP this kubelet gave the (current) pod of that name. */
  ipOf(podName: string): string | undefined {
    const uid = this.uidByName.get(podName);
    return uid === undefined ? undefined : this.ipByUid.get(uid);
  }

  /** Flip the pod's Ready and ContainersReady conditions (and containers' ready flags); sticks for this pod name. */
  async setReady(podName: string, ready: boolean): Promise<void> {
    this.readiness.set(podName, ready);
    await this.enqueue(async () => {
      for (let attempt = 0; ; attempt++) {
        const pod = await this.core.readNamespacedPod({ namespace: this.namespace, name: podName });
        if (!pod.status?.podIP) {
          // Not started yet: reconcile will apply the readiness when it starts the pod.
          await this.reconcile();
          return;
        }
        try {
          await this.writeStatus(pod, this.statusFor(pod, pod.status.podIP, ready));
          return;
        } catch (err) {
          if (!isApiCode(err, 409) || attempt >= 5) throw err;
        }
      }
    });
  }

  /** Deletes the pod immediately (gracePeriodSeconds 0), as `kubectl delete --force --grace-period=0`. */
  async forceDelete(podName: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ namespace: this.namespace, name: podName, gracePeriodSeconds: 0 });
    } catch (err) {
      if (!isApiCode(err, 404)) throw err;
    }
  }

  // ---------------------------------------------------------------- internals

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Coalesces triggers: at most one reconcile waiting in the queue. */
  private triggerReconcile(): void {
    if (!this.running || this.reconcileQueued) return;
    this.reconcileQueued = true;
    void this.enqueue(async () => {
      this.reconcileQueued = false;
      if (!this.running) return;
      await this.reconcile();
    }).catch((err: unknown) => {
      this.log(`reconcile failed, retrying: ${err instanceof Error ? err.message : String(err)}`);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.triggerReconcile(), 300);
    });
  }

  private async watchLoop(): Promise<void> {
    let backoff = 100;
    while (this.running) {
      const started = Date.now();
      const ended = new Promise<unknown>((resolve) => {
        this.watch
          .watch(
            `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods`,
            { timeoutSeconds: 45, allowWatchBookmarks: false },
            () => this.triggerReconcile(),
            (err: unknown) => resolve(err),
          )
          .then(
            (ctrl) => {
              this.watchAbort = ctrl;
              if (!this.running) ctrl.abort();
            },
            (err: unknown) => resolve(err),
          );
      });
      const err = await ended;
      if (!this.running) break;
      if (err) this.log(`pod watch ended: ${err instanceof Error ? err.message : String(err)}`);
      // A watch that lived a while was healthy: reconnect quickly. Otherwise back off (API server down).
      backoff = Date.now() - started > 5000 ? 100 : Math.min(backoff * 2, 2000);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, backoff * (0.75 + Math.random() / 2));
      });
      this.wake = undefined;
      // Whatever happened while we were not watching gets picked up by the reconcile
      // the next watch's initial ADDED events trigger.
    }
  }

  private async reconcile(): Promise<void> {
    const list = await this.core.listNamespacedPod({ namespace: this.namespace });
    const seen = new Set<string>();
    for (const pod of list.items) {
      const name = pod.metadata?.name;
      const uid = pod.metadata?.uid;
      if (!name || !uid) continue;
      seen.add(name);
      this.uidByName.set(name, uid);
      if (pod.metadata?.deletionTimestamp) {
        await this.finishDeletion(name, uid);
        continue;
      }
      const phase = pod.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') continue;
      let current = pod;
      if (!current.spec?.nodeName) {
        await this.bind(name, uid);
        current = await this.core.readNamespacedPod({ namespace: this.namespace, name });
      }
      const existingIp = current.status?.podIP;
      if (existingIp && phase === 'Running') {
        this.adoptIp(uid, existingIp);
        continue;
      }
      const ip = this.ipFor(uid, existingIp);
      await this.beforeRunning({ name, ip });
      await this.writeStatus(current, this.statusFor(current, ip, this.readiness.get(name) ?? true));
      this.log(`pod ${this.namespace}/${name} running at ${ip}`);
    }
    for (const name of [...this.uidByName.keys()]) {
      if (!seen.has(name)) {
        const uid = this.uidByName.get(name);
        this.uidByName.delete(name);
        if (uid) this.ipByUid.delete(uid);
      }
    }
  }

  private async bind(name: string, uid: string): Promise<void> {
    try {
      await this.core.createNamespacedPodBinding({
        namespace: this.namespace,
        name,
        body: {
          apiVersion: 'v1',
          kind: 'Binding',
          metadata: { name, namespace: this.namespace, uid },
          target: { apiVersion: 'v1', kind: 'Node', name: FAKE_NODE_NAME },
        },
      });
    } catch (err) {
      // 409: already bound (by an earlier attempt).
      if (!isApiCode(err, 409)) throw err;
    }
  }

  private async finishDeletion(name: string, uid: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({
        namespace: this.namespace,
        name,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid } },
      });
      this.log(`pod ${this.namespace}/${name} deleted (grace 0)`);
    } catch (err) {
      // 404: gone already; 409: a new pod with that name (precondition failed).
      if (!isApiCode(err, 404) && !isApiCode(err, 409)) throw err;
    }
  }

  private adoptIp(uid: string, ip: string): void {
    this.ipByUid.set(uid, ip);
    if (ip.startsWith(this.ipPrefix)) {
      const host = Number(ip.slice(this.ipPrefix.length));
      if (Number.isInteger(host) && host >= this.nextHost) this.nextHost = host + 1;
    }
  }

  private ipFor(uid: string, existing: string | undefined): string {
    const known = this.ipByUid.get(uid);
    if (known) return known;
    if (existing) {
      this.adoptIp(uid, existing);
      return existing;
    }
    if (this.nextHost > 254) throw new Error(`FakeKubelet ${this.ipPrefix}x: out of addresses`);
    const ip = `${this.ipPrefix}${this.nextHost++}`;
    this.ipByUid.set(uid, ip);
    return ip;
  }

  private statusFor(pod: V1Pod, ip: string, ready: boolean): NonNullable<V1Pod['status']> {
    const now = new Date();
    const prev = new Map((pod.status?.conditions ?? []).map((c) => [c.type, c]));
    const cond = (type: string, status: boolean): V1PodCondition => {
      const s = status ? 'True' : 'False';
      const old = prev.get(type);
      return { type, status: s, lastProbeTime: undefined, lastTransitionTime: old && old.status === s && old.lastTransitionTime ? old.lastTransitionTime : now };
    };
    const started = pod.status?.startTime ?? now;
    const prevContainers = new Map((pod.status?.containerStatuses ?? []).map((c) => [c.name, c]));
    const containerStatuses: V1ContainerStatus[] = (pod.spec?.containers ?? []).map((c) => ({
      name: c.name,
      image: c.image ?? '',
      imageID: prevContainers.get(c.name)?.imageID ?? `fake://${c.image ?? ''}`,
      containerID: prevContainers.get(c.name)?.containerID ?? `fake://${pod.metadata?.uid ?? ''}/${c.name}`,
      ready,
      started: true,
      restartCount: prevContainers.get(c.name)?.restartCount ?? 0,
      state: { running: { startedAt: prevContainers.get(c.name)?.state?.running?.startedAt ?? started } },
    }));
    return {
      ...pod.status,
      phase: 'Running',
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP: ip,
      podIPs: [{ ip }],
      startTime: started,
      conditions: [cond('PodReadyToStartContainers', true), cond('Initialized', true), cond('ContainersReady', ready), cond('Ready', ready), cond('PodScheduled', true)],
      containerStatuses,
    };
  }

  private async writeStatus(pod: V1Pod, status: NonNullable<V1Pod['status']>): Promise<void> {
    const name = pod.metadata?.name;
    if (!name) throw new Error('pod without a name');
    await this.core.replaceNamespacedPodStatus({ namespace: this.namespace, name, body: { ...pod, status } });
  }
}

/** Creates the Node 'fake-node' (if missing) with a Ready condition. Shared by all FakeKubelets of a cluster. */
export async function ensureFakeNode(core: CoreV1Api): Promise<void> {
  try {
    await core.createNode({ body: { apiVersion: 'v1', kind: 'Node', metadata: { name: FAKE_NODE_NAME, labels: { 'kubernetes.io/hostname': FAKE_NODE_NAME, 'kubernetes.io/os': 'linux' } } } });
  } catch (err) {
    if (!isApiCode(err, 409)) throw err;
  }
  for (let attempt = 0; ; attempt++) {
    const node = await core.readNode({ name: FAKE_NODE_NAME });
    if (node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) return;
    const now = new Date();
    try {
      await core.replaceNodeStatus({
        name: FAKE_NODE_NAME,
        body: {
          ...node,
          status: {
            ...node.status,
            conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'fake kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now }],
            addresses: [{ type: 'Hostname', address: FAKE_NODE_NAME }],
            capacity: { cpu: '64', memory: '256Gi', pods: '250' },
            allocatable: { cpu: '64', memory: '256Gi', pods: '250' },
          },
        },
      });
      return;
    } catch (err) {
      if (!isApiCode(err, 409) || attempt >= 5) throw err;
      await sleep(50);
    }
  }
}
