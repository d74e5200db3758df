// SYNCER_DISCOVERY=kubernetes: three list-watch loops (this Deployment by name, its ReplicaSets
// and its pods by the Deployment's selector), each writing into its own object cache, feed one
// coalesced recomputation that publishes the peer set. Whether discovery is failing is known in
// one place, api-health.ts, which every request reports to.
//
// Publishing rules: only when all three caches are synced (listed for the current selector), no
// resource is failing, and the objects describe a settled state (computePeers ok). A failure
// never publishes: the store goes stale and the last set keeps serving; when the last failing
// resource recovers, the recomputation republishes, which tells the store discovery recovered
// even when the set is unchanged.
import { loadApiCredentials } from './api-credentials.js';
import type { ApiCredentials } from './credentials.js';
import type { ApiResource } from './api-errors.js';
import { ApiHealth } from './api-health.js';
import { API_BACKOFF, Backoff, pause } from './backoff.js';
import { realClock, type Clock } from '../clock.js';
import { Coalescer } from './coalescer.js';
import { createKubeHttp, type KubeHttp } from './kube-http.js';
import { ObjectCache } from './object-cache.js';
import { narrowDeployment, narrowPod, narrowReplicaSet, type DeploymentLite, type Meta, type Narrow } from './objects.js';
import { resolveDeployment } from './owner-resolution.js';
import { computePeers, type PeerComputation } from './peers-from-objects.js';
import { renderSelector } from './label-selector.js';
import { Reflector } from './reflector.js';
import type { PeerSource, SourceDeps } from '../source.js';
import { reportUnexpected } from '../../unexpected.js';

export interface KubernetesSourceOptions {
  /** Defaults to loadApiCredentials() (KUBECONFIG or ~/.kube/config, else the pod's service account). */
  readonly credentials?: ApiCredentials;
  /** Replaces the HTTP layer entirely (unit tests against an in-process fake). */
  readonly http?: KubeHttp;
  readonly clock?: Clock;
  readonly random?: () => number;
}

export interface KubernetesSource extends PeerSource {
  /** The Deployment being followed, once known. */
  deployment(): string | undefined;
  /** The latest recomputation (also when it was held back), for the `peers` command. */
  lastComputation(): PeerComputation | undefined;
  /** Why no set is being published: the latest API failure while one lasts, else the hold reason; cleared by a publish. */
  lastProblem(): string | undefined;
}

export function createKubernetesSource(deps: SourceDeps, options: KubernetesSourceOptions = {}): KubernetesSource {
  const { config, store } = deps;
  const k = config.discovery.kubernetes;
  const namespace = config.pod.namespace;
  const ns = encodeURIComponent(namespace);
  const log = deps.log.child({ component: 'discovery', mode: 'kubernetes' });
  const clock = options.clock ?? realClock;
  const random = options.random ?? Math.random;
  const http = options.http ?? createKubeHttp(options.credentials ?? (() => loadApiCredentials()));
  const coalescer = new Coalescer(k.coalesceMs, clock, recompute);
  const health = new ApiHealth({ http, clock, random, log, namespace, store, recovered: () => coalescer.trigger() });

  const stopController = new AbortController();
  let running: Promise<void> | undefined;
  let deploymentName = k.deployment;
  let selectorQuery: string | undefined;
  let computation: PeerComputation | undefined;
  /** Why the objects do not allow a publish (not an API failure: those are health's). */
  let held: string | undefined;

  /** One resource: its cache, and the loop that keeps it current. */
  function watched<T extends { readonly metadata: Meta }>(
    resource: ApiResource,
    path: string,
    narrow: Narrow<T>,
    onChange: () => void,
  ): { cache: ObjectCache<T>; reflector: Reflector<T> } {
    const cache = new ObjectCache<T>(onChange);
    const { watchTimeoutS, resyncMs } = k;
    const reflector = new Reflector<T>({ resource, path, narrow, http, store: cache, health, watchTimeoutS, resyncMs, clock, random, log });
    return { cache, reflector };
  }

  const deployments = watched('deployments', `/apis/apps/v1/namespaces/${ns}/deployments`, narrowDeployment, onDeploymentChange);
  const replicaSets = watched('replicasets', `/apis/apps/v1/namespaces/${ns}/replicasets`, narrowReplicaSet, () => coalescer.trigger());
  const pods = watched('pods', `/api/v1/namespaces/${ns}/pods`, narrowPod, () => coalescer.trigger());

  function currentDeployment(): DeploymentLite | undefined {
    for (const d of deployments.cache.items()) if (d.metadata.name === deploymentName) return d;
    return undefined;
  }

  /** Starts the ReplicaSet and pod watches, or restarts them when the selector changed. */
  function onDeploymentChange(): void {
    const d = currentDeployment();
    if (d !== undefined) {
      const rendered = renderSelector(d.selector);
      if (rendered.query !== selectorQuery) {
        if (rendered.skipped.length > 0) {
          log.warn({ skipped: rendered.skipped }, 'some selector expressions cannot be sent to the API server; filtering by owner instead');
        }
        log.info({ deployment: d.metadata.name, labelSelector: rendered.query }, selectorQuery === undefined ? 'watching ReplicaSets and pods' : 'Deployment selector changed; restarting watches');
        selectorQuery = rendered.query;
        replicaSets.reflector.start({ labelSelector: rendered.query });
        pods.reflector.start({ labelSelector: rendered.query });
      }
    }
    coalescer.trigger();
  }

  function recompute(): void {
    if (stopController.signal.aborted) return;
    // Rollouts and reconnects touch the three streams in any order: act only on a synced view.
    const synced = deployments.cache.synced && replicaSets.cache.synced && pods.cache.synced;
    if (selectorQuery === undefined || !synced || health.failing()) {
      if (deployments.cache.synced && currentDeployment() === undefined) hold(`Deployment ${deploymentName ?? '?'} not found in namespace ${namespace}`);
      return;
    }
    const result = computePeers(
      { deployment: currentDeployment(), replicaSets: replicaSets.cache.items(), pods: pods.cache.items() },
      k.scope,
      config.probe.port,
    );
    computation = result;
    if (!result.ok) {
      hold(result.reason);
      return;
    }
    held = undefined;
    store.publish(result.peers);
  }

  function hold(reason: string): void {
    if (reason === held) return;
    held = reason;
    log.info({ reason }, 'keeping the current peer set until the objects settle');
  }

  async function run(): Promise<void> {
    if (deploymentName === undefined) deploymentName = await resolveUntilKnown();
    if (deploymentName === undefined) return; // stopped while resolving
    log.info({ deployment: deploymentName, namespace, scope: k.scope }, 'following Deployment');
    deployments.reflector.start({ fieldSelector: `metadata.name=${deploymentName}` });
  }

  async function resolveUntilKnown(): Promise<string | undefined> {
    const backoff = new Backoff(API_BACKOFF, random);
    const signal = stopController.signal;
    while (!signal.aborted) {
      try {
        const r = await resolveDeployment(http, namespace, config.pod.name, signal);
        if (r.ok) return r.deployment;
        if (signal.aborted) return undefined;
        if (!r.retry) {
          if (r.message !== held) log.error(r.message);
          held = r.message;
        } else if (r.error.status === 404 && r.resource === 'pods') {
          const reason = `pod ${config.pod.name} not found in namespace ${namespace} (check POD_NAME/POD_NAMESPACE, or set SYNCER_DEPLOYMENT)`;
          if (reason !== held) log.warn(reason);
          held = reason;
        } else {
          health.failed(r.resource, 'get', r.error);
        }
      } catch (err) {
        // A bug on the way: retried like a failed lookup, or discovery would never start.
        reportUnexpected('promise', "finding this pod's Deployment", err);
      }
      await pause(clock, backoff.next(), signal);
      await health.answering(signal);
    }
    return undefined;
  }

  return {
    start() {
      running ??= run();
    },
    async stop() {
      stopController.abort();
      coalescer.cancel();
      await running;
      await Promise.all([deployments.reflector.stop(), replicaSets.reflector.stop(), pods.reflector.stop(), health.stop()]);
      coalescer.cancel();
    },
    deployment: () => deploymentName,
    lastComputation: () => computation,
    lastProblem: () => health.problem() ?? held,
  };
}

