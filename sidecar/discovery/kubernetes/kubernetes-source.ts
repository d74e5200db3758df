// SYNCER_DISCOVERY=kubernetes: three reflectors (this Deployment by name, its ReplicaSets and its
// pods by the Deployment's selector) feed one coalesced recomputation that publishes the peer set.
//
// Publishing rules: only when all three caches are synced (fresh list or open watch) and the
// objects describe a settled state (computePeers ok). A failure never publishes: it marks the
// store stale and the last set keeps serving; the next synced state republishes, which tells the
// store discovery recovered even when the set is unchanged.
import type { KubeConfig } from '@kubernetes/client-node';
import { API_BACKOFF, Backoff } from './backoff.js';
import { ApiErrorReporter, type ApiResource } from './api-errors.js';
import { realClock, type Clock } from '../clock.js';
import { Coalescer } from './coalescer.js';
import { createKubeHttp, type KubeApiError, type KubeHttp } from './kube-http.js';
import { narrowDeployment, narrowPod, narrowReplicaSet, type DeploymentLite, type Meta } from './objects.js';
import { resolveDeployment } from './owner-resolution.js';
import { computePeers, type PeerComputation } from './peers-from-objects.js';
import { renderSelector } from './label-selector.js';
import { Reflector, type ReflectorListener, type ReflectorState } from './reflector.js';
import type { PeerSource, SourceDeps } from '../source.js';

export interface KubernetesSourceOptions {
  /** Defaults to KubeConfig.loadFromDefault() (in-cluster, else KUBECONFIG / ~/.kube/config). */
  readonly kubeConfig?: KubeConfig;
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
  /** The latest failure or hold reason, cleared by a publish. */
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
  const http = options.http ?? createKubeHttp(options.kubeConfig ?? loadDefaultKubeConfig);
  const errors = new ApiErrorReporter(log, namespace);

  const stopController = new AbortController();
  let running: Promise<void> | undefined;
  let deploymentName = k.deployment;
  let selectorQuery: string | undefined;
  let computation: PeerComputation | undefined;
  let problem: string | undefined;
  let lastHold: string | undefined;
  const coalescer = new Coalescer(k.coalesceMs, clock, recompute);

  function reflector<T extends { readonly metadata: Meta }>(
    resource: ApiResource,
    path: string,
    narrow: (json: unknown) => T | undefined,
    onChange: () => void,
  ): Reflector<T> {
    const listener: ReflectorListener = {
      changed: onChange,
      stateChanged: (state: ReflectorState) => {
        if (state === 'synced') {
          errors.recovered(resource);
          coalescer.trigger();
        }
      },
      failed: (verb, err) => {
        problem = errors.report(verb, resource, err);
        store.reportFailure(verb, problem);
      },
    };
    return new Reflector<T>({
      resource,
      path,
      narrow,
      http,
      watchTimeoutS: k.watchTimeoutS,
      resyncMs: k.resyncMs,
      clock,
      random,
      log,
      listener,
    });
  }

  const deployments = reflector('deployments', `/apis/apps/v1/namespaces/${ns}/deployments`, narrowDeployment, onDeploymentChange);
  const replicaSets = reflector('replicasets', `/apis/apps/v1/namespaces/${ns}/replicasets`, narrowReplicaSet, () => coalescer.trigger());
  const pods = reflector('pods', `/api/v1/namespaces/${ns}/pods`, narrowPod, () => coalescer.trigger());

  function currentDeployment(): DeploymentLite | undefined {
    for (const d of deployments.items()) if (d.metadata.name === deploymentName) return d;
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
        replicaSets.start({ labelSelector: rendered.query });
        pods.start({ labelSelector: rendered.query });
      }
    }
    coalescer.trigger();
  }

  function recompute(): void {
    if (stopController.signal.aborted) return;
    // Rollouts and reconnects touch the three streams in any order: act only on a synced view.
    if (selectorQuery === undefined || deployments.state !== 'synced' || replicaSets.state !== 'synced' || pods.state !== 'synced') {
      if (deployments.state === 'synced' && currentDeployment() === undefined) hold(`Deployment ${deploymentName ?? '?'} not found in namespace ${namespace}`);
      return;
    }
    const result = computePeers(
      { deployment: currentDeployment(), replicaSets: replicaSets.items(), pods: pods.items() },
      k.scope,
      config.probe.port,
    );
    computation = result;
    if (!result.ok) {
      hold(result.reason);
      return;
    }
    lastHold = undefined;
    problem = undefined;
    store.publish(result.peers);
  }

  function hold(reason: string): void {
    problem = reason;
    if (reason === lastHold) return;
    lastHold = reason;
    log.info({ reason }, 'keeping the current peer set until the objects settle');
  }

  async function run(): Promise<void> {
    if (deploymentName === undefined) deploymentName = await resolveUntilKnown();
    if (deploymentName === undefined) return; // stopped while resolving
    log.info({ deployment: deploymentName, namespace, scope: k.scope }, 'following Deployment');
    deployments.start({ fieldSelector: `metadata.name=${deploymentName}` });
  }

  async function resolveUntilKnown(): Promise<string | undefined> {
    const backoff = new Backoff(API_BACKOFF, random);
    let logged: string | undefined;
    while (!stopController.signal.aborted) {
      const r = await resolveDeployment(http, namespace, config.pod.name, stopController.signal);
      if (r.ok) return r.deployment;
      if (stopController.signal.aborted) return undefined;
      if (r.retry) {
        problem =
          r.error.status === 404 && r.resource === 'pods'
            ? `pod ${config.pod.name} not found in namespace ${namespace} (check POD_NAME/POD_NAMESPACE, or set SYNCER_DEPLOYMENT)`
            : reportGetFailure(r.resource, r.error);
        if (r.error.status === 404 && problem !== logged) log.warn(problem);
      } else {
        problem = r.message;
        if (problem !== logged) log.error(problem);
      }
      logged = problem;
      await sleep(backoff.next());
    }
    return undefined;
  }

  /** Resolving the Deployment failed: logged, counted, and (once a set exists) marked stale. */
  function reportGetFailure(resource: ApiResource, err: KubeApiError): string {
    const line = errors.report('get', resource, err);
    store.reportFailure('get', line);
    return line;
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = clock.setTimeout(done, ms);
      const signal = stopController.signal;
      function done(): void {
        t.cancel();
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }

  return {
    start() {
      running ??= run();
    },
    async stop() {
      stopController.abort();
      coalescer.cancel();
      await running;
      await Promise.all([deployments.stop(), replicaSets.stop(), pods.stop()]);
      coalescer.cancel();
    },
    deployment: () => deploymentName,
    lastComputation: () => computation,
    lastProblem: () => problem,
  };
}

/** In-cluster service account, else KUBECONFIG or ~/.kube/config; imported on first use (see kube-http.ts). */
export async function loadDefaultKubeConfig(): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
