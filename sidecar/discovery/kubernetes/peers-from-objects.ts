// The peer set as a pure function of what the watches hold: (Deployment, its ReplicaSets, pods,
// scope) → peers, plus a per-pod explanation that the `peers` command prints.
import type { PeerScope } from '../../config.js';
import type { Peer } from '../../model.js';
import { controllerOf, REVISION_ANNOTATION, type DeploymentLite, type PodLite, type ReplicaSetLite } from './objects.js';

export interface DiscoveryObjects {
  readonly deployment: DeploymentLite | undefined;
  readonly replicaSets: Iterable<ReplicaSetLite>;
  readonly pods: Iterable<PodLite>;
}

export interface PodExplanation {
  readonly name: string;
  readonly ip: string | undefined;
  readonly ready: boolean;
  readonly replicaSet: string | undefined;
  readonly revision: string | undefined;
  readonly included: boolean;
  /** 'peer' when included, else why not. */
  readonly reason: string;
}

export type PeerComputation =
  | {
      readonly ok: true;
      readonly peers: readonly Peer[];
      readonly pods: readonly PodExplanation[];
      readonly revision: string | undefined;
      readonly activeReplicaSet: string | undefined;
      /** The ReplicaSet whose pods are the peers: the active one, or mid-rollout the newest that serves. */
      readonly servingReplicaSet: string | undefined;
    }
  /**
   * The objects do not describe a settled state yet (no Deployment, or its active ReplicaSet not
   * seen yet: the Deployment and ReplicaSet watches are separate streams and may arrive in either
   * order during a rollout). The caller keeps its last set rather than publish a wrong one.
   */
  | { readonly ok: false; readonly reason: string; readonly pods: readonly PodExplanation[] };

export function computePeers(objects: DiscoveryObjects, scope: PeerScope, port: number): PeerComputation {
  const { deployment } = objects;
  if (deployment === undefined) return { ok: false, reason: 'the Deployment is not found', pods: [] };

  // ReplicaSets this Deployment controls, by uid (names can be reused after deletion; uids cannot).
  const owned = new Map<string, ReplicaSetLite>();
  for (const rs of objects.replicaSets) {
    if (controllerOf(rs.metadata)?.uid === deployment.metadata.uid) owned.set(rs.metadata.uid, rs);
  }
  const revision = deployment.metadata.annotations[REVISION_ANNOTATION];
  const active = [...owned.values()].find((rs) => revision !== undefined && rs.metadata.annotations[REVISION_ANNOTATION] === revision);

  // By name, in code-unit order (not the locale's). No two pods of a namespace share a name.
  const sorted = [...objects.pods].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  const explainAll = (serving: ReplicaSetLite | undefined): PodExplanation[] => sorted.map((pod) => explain(pod, owned, serving, scope));
  let serving = active;
  let pods = explainAll(active);
  if (active !== undefined && !pods.some((p) => p.included)) {
    // A rollout's new ReplicaSet starts with no ready pod while the previous one still serves.
    // Probing nobody would answer Synced for every token, so until the new revision has a ready
    // pod, the peers are those of the newest revision that has one. (In deployment scope no
    // ReplicaSet changes which pods are included, so none is ever taken here.)
    for (const rs of byRevisionDescending(owned.values())) {
      const candidate = explainAll(rs);
      if (candidate.some((p) => p.included)) {
        serving = rs;
        pods = candidate;
        break;
      }
    }
  }
  // An included pod has an IP: exclusion() leaves out those without one.
  const peers = pods.filter((p) => p.included).map((p) => ({ name: p.name, host: p.ip!, port }));

  if (scope === 'revision' && active === undefined) {
    const reason =
      revision === undefined
        ? 'the Deployment has no revision annotation yet'
        : `the active ReplicaSet (revision ${revision}) is not seen yet`;
    return { ok: false, reason, pods };
  }
  return { ok: true, peers, pods, revision, activeReplicaSet: active?.metadata.name, servingReplicaSet: serving?.metadata.name };
}

function byRevisionDescending(replicaSets: Iterable<ReplicaSetLite>): ReplicaSetLite[] {
  const revisionOf = (rs: ReplicaSetLite): number => Number(rs.metadata.annotations[REVISION_ANNOTATION] ?? 0) || 0;
  return [...replicaSets].sort((a, b) => revisionOf(b) - revisionOf(a));
}

function explain(
  pod: PodLite,
  owned: ReadonlyMap<string, ReplicaSetLite>,
  serving: ReplicaSetLite | undefined,
  scope: PeerScope,
): PodExplanation {
  const owner = controllerOf(pod.metadata);
  const rs = owner?.kind === 'ReplicaSet' ? owned.get(owner.uid) : undefined;
  const rsRevision = rs?.metadata.annotations[REVISION_ANNOTATION];
  const base = {
    name: pod.metadata.name,
    ip: pod.podIP,
    ready: pod.ready === 'True',
    replicaSet: rs?.metadata.name ?? owner?.name,
    revision: rsRevision,
  };
  const reason = exclusion(pod, rs, serving, scope);
  return { ...base, included: reason === undefined, reason: reason ?? 'peer' };
}

function exclusion(
  pod: PodLite,
  rs: ReplicaSetLite | undefined,
  serving: ReplicaSetLite | undefined,
  scope: PeerScope,
): string | undefined {
  if (rs === undefined) return 'not owned by a ReplicaSet of the Deployment';
  if (scope === 'revision' && rs !== serving) {
    return `other revision (serving is ${serving?.metadata.annotations[REVISION_ANNOTATION] ?? '?'})`;
  }
  if (pod.metadata.deletionTimestamp !== undefined) return 'terminating';
  if (pod.podIP === undefined) return 'no pod IP';
  if (pod.ready !== 'True') return `not Ready (${pod.ready ?? 'no condition'})`;
  return undefined;
}
