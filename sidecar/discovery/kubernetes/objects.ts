// The few fields of Pods, ReplicaSets and Deployments that discovery reads, and narrowing from
// decoded JSON. Watch events and list items arrive as raw JSON; checking the fields we rely on
// here (instead of casting) means a surprising object is skipped with a reason, not a crash.

export interface OwnerReference {
  readonly kind: string;
  readonly name: string;
  readonly uid: string;
  readonly controller: boolean;
}

export interface Meta {
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly ownerReferences: readonly OwnerReference[];
  /** Set once deletion started: the object is terminating. */
  readonly deletionTimestamp: string | undefined;
}

export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: string;
  readonly values: readonly string[];
}

export interface LabelSelector {
  readonly matchLabels: Readonly<Record<string, string>>;
  readonly matchExpressions: readonly LabelSelectorRequirement[];
}

export interface PodLite {
  readonly metadata: Meta;
  readonly podIP: string | undefined;
  /** The Ready condition's status: 'True', 'False', 'Unknown', or undefined when absent. */
  readonly ready: string | undefined;
  readonly phase: string | undefined;
}

export interface ReplicaSetLite {
  readonly metadata: Meta;
}

export interface DeploymentLite {
  readonly metadata: Meta;
  readonly selector: LabelSelector;
}

/** The annotation the Deployment controller puts on a Deployment and each of its ReplicaSets. */
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';

export type Narrow<T> = (json: unknown) => T | undefined;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(v)) return out;
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
  return out;
}

function records(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.filter(isRecord) : [];
}

function ownerReferences(v: unknown): OwnerReference[] {
  const out: OwnerReference[] = [];
  for (const r of records(v)) {
    const kind = str(r['kind']);
    const name = str(r['name']);
    const uid = str(r['uid']);
    if (kind !== undefined && name !== undefined && uid !== undefined) out.push({ kind, name, uid, controller: r['controller'] === true });
  }
  return out;
}

/** Narrows an object's metadata; only name and uid are mandatory (the API server always sets them). */
export function narrowMeta(json: unknown): Meta | undefined {
  if (!isRecord(json) || !isRecord(json['metadata'])) return undefined;
  const m = json['metadata'];
  const name = str(m['name']);
  const uid = str(m['uid']);
  if (name === undefined || uid === undefined) return undefined;
  const deletion = m['deletionTimestamp'];
  return {
    name,
    uid,
    resourceVersion: str(m['resourceVersion']) ?? '',
    labels: stringMap(m['labels']),
    annotations: stringMap(m['annotations']),
    ownerReferences: ownerReferences(m['ownerReferences']),
    // Typed clients turn this into a Date; raw JSON keeps the string. Presence is what counts.
    deletionTimestamp: deletion === undefined || deletion === null ? undefined : String(deletion),
  };
}

export const narrowPod: Narrow<PodLite> = (json) => {
  const metadata = narrowMeta(json);
  if (metadata === undefined || !isRecord(json)) return undefined;
  const status = isRecord(json['status']) ? json['status'] : {};
  const ready = records(status['conditions']).find((c) => c['type'] === 'Ready');
  return {
    metadata,
    podIP: str(status['podIP']) || undefined,
    ready: ready === undefined ? undefined : str(ready['status']),
    phase: str(status['phase']),
  };
};

export const narrowReplicaSet: Narrow<ReplicaSetLite> = (json) => {
  const metadata = narrowMeta(json);
  return metadata === undefined ? undefined : { metadata };
};

export const narrowDeployment: Narrow<DeploymentLite> = (json) => {
  const metadata = narrowMeta(json);
  if (metadata === undefined || !isRecord(json)) return undefined;
  const spec = isRecord(json['spec']) ? json['spec'] : {};
  const sel = isRecord(spec['selector']) ? spec['selector'] : {};
  const matchExpressions: LabelSelectorRequirement[] = [];
  for (const e of records(sel['matchExpressions'])) {
    const key = str(e['key']);
    const operator = str(e['operator']);
    if (key === undefined || operator === undefined) continue;
    const values = Array.isArray(e['values']) ? e['values'].filter((x): x is string => typeof x === 'string') : [];
    matchExpressions.push({ key, operator, values });
  }
  return { metadata, selector: { matchLabels: stringMap(sel['matchLabels']), matchExpressions } };
};

/** The controller owner reference (at most one per object), if any. */
export function controllerOf(meta: Meta): OwnerReference | undefined {
  return meta.ownerReferences.find((r) => r.controller);
}
