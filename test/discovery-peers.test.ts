// The peer computation is a pure function of (Deployment, ReplicaSets, pods, scope): a table.
import t from 'tap';
import type { PeerScope } from '../sidecar/config.js';
import { renderSelector } from '../sidecar/discovery/kubernetes/label-selector.js';
import { narrowDeployment, narrowPod, narrowReplicaSet, type DeploymentLite } from '../sidecar/discovery/kubernetes/objects.js';
import { computePeers } from '../sidecar/discovery/kubernetes/peers-from-objects.js';
import { deploymentJson, podJson, replicaSetJson, type PodShape } from './support/discovery-harness.js';

const PORT = 8080;

function dep(revision: string | undefined, uid = 'dep'): DeploymentLite {
  const d = narrowDeployment(deploymentJson('gw', uid, revision));
  if (d === undefined) throw new Error('fixture');
  return d;
}
const rs = (name: string, uid: string, owner: string | undefined, revision: string) => {
  const r = narrowReplicaSet(replicaSetJson(name, uid, owner, revision));
  if (r === undefined) throw new Error('fixture');
  return r;
};
const pod = (name: string, shape: PodShape) => {
  const p = narrowPod(podJson(name, shape));
  if (p === undefined) throw new Error('fixture');
  return p;
};

const OLD = rs('gw-old', 'rs1', 'dep', '1');
const NEW = rs('gw-new', 'rs2', 'dep', '2');
const FOREIGN = rs('other', 'rs9', 'someone-else', '2');

const READY = { ip: '10.0.0.1', ready: 'True' } as const;

interface Row {
  readonly name: string;
  readonly scope: PeerScope;
  readonly deployment: DeploymentLite | undefined;
  readonly replicaSets: ReturnType<typeof rs>[];
  readonly pods: ReturnType<typeof pod>[];
  /** Expected peer names, or a regexp for the hold reason when no set should be published. */
  readonly want: string[] | RegExp;
  /** Expected reason for a pod left out. */
  readonly reasons?: Record<string, RegExp>;
}

const rows: Row[] = [
  {
    name: 'ready pods of the active ReplicaSet are peers, with their IPs',
    scope: 'revision',
    deployment: dep('2'),
    replicaSets: [OLD, NEW],
    pods: [pod('a', { ...READY, rsUid: 'rs2' }), pod('b', { ip: '10.0.0.2', ready: 'True', rsUid: 'rs2' })],
    want: ['a', 'b'],
  },
  {
    name: 'revision scope leaves out the old ReplicaSet',
    scope: 'revision',
    deployment: dep('2'),
    replicaSets: [OLD, NEW],
    pods: [pod('old-1', { ...READY, rsUid: 'rs1' }), pod('new-1', { ...READY, rsUid: 'rs2' })],
    want: ['new-1'],
    reasons: { 'old-1': /other revision \(serving is 2\)/ },
  },
  {
    name: 'mid-rollout, while the new revision has no ready pod, the newest serving revision is probed',
    scope: 'revision',
    deployment: dep('3'),
    replicaSets: [OLD, NEW, rs('gw-newest', 'rs3', 'dep', '3')],
    pods: [
      pod('old-1', { ...READY, rsUid: 'rs1' }),
      pod('new-1', { ...READY, rsUid: 'rs2' }),
      pod('new-2', { ip: '10.0.0.7', ready: 'True', rsUid: 'rs2' }),
      pod('newest-1', { ip: '10.0.0.8', ready: 'False', rsUid: 'rs3' }),
    ],
    want: ['new-1', 'new-2'],
    reasons: { 'old-1': /other revision \(serving is 2\)/, 'newest-1': /other revision \(serving is 2\)/ },
  },
  {
    name: 'once the new revision has a ready pod, it alone is probed',
    scope: 'revision',
    deployment: dep('2'),
    replicaSets: [OLD, NEW],
    pods: [pod('old-1', { ...READY, rsUid: 'rs1' }), pod('new-1', { ip: '10.0.0.7', ready: 'True', rsUid: 'rs2' }), pod('new-2', { ip: '10.0.0.8', ready: 'False', rsUid: 'rs2' })],
    want: ['new-1'],
  },
  {
    name: 'deployment scope includes every ReplicaSet of the Deployment',
    scope: 'deployment',
    deployment: dep('2'),
    replicaSets: [OLD, NEW],
    pods: [pod('old-1', { ...READY, rsUid: 'rs1' }), pod('new-1', { ...READY, rsUid: 'rs2' })],
    want: ['new-1', 'old-1'],
  },
  {
    name: 'not ready, unknown, no condition, terminating and IP-less pods are left out',
    scope: 'revision',
    deployment: dep('2'),
    replicaSets: [NEW],
    pods: [
      pod('ok', { ...READY, rsUid: 'rs2' }),
      pod('unready', { ip: '10.0.0.3', ready: 'False', rsUid: 'rs2' }),
      pod('unknown', { ip: '10.0.0.4', ready: 'Unknown', rsUid: 'rs2' }),
      pod('fresh', { ip: '10.0.0.5', rsUid: 'rs2' }),
      pod('leaving', { ip: '10.0.0.6', ready: 'True', terminating: true, rsUid: 'rs2' }),
      pod('pending', { ready: 'True', rsUid: 'rs2' }),
    ],
    want: ['ok'],
    reasons: { unready: /not Ready \(False\)/, unknown: /not Ready \(Unknown\)/, fresh: /no condition/, leaving: /terminating/, pending: /no pod IP/ },
  },
  {
    name: 'pods matching the labels but owned elsewhere are left out (ownerReferences decide)',
    scope: 'deployment',
    deployment: dep('2'),
    replicaSets: [NEW, FOREIGN],
    pods: [pod('mine', { ...READY, rsUid: 'rs2' }), pod('foreign', { ...READY, rsUid: 'rs9' }), pod('bare', READY)],
    want: ['mine'],
    reasons: { foreign: /not owned/, bare: /not owned/ },
  },
  {
    name: 'an active ReplicaSet with no pods yields an empty set (scaled to zero)',
    scope: 'revision',
    deployment: dep('2'),
    replicaSets: [OLD, NEW],
    pods: [],
    want: [],
  },
  {
    name: 'no Deployment: hold',
    scope: 'revision',
    deployment: undefined,
    replicaSets: [NEW],
    pods: [pod('a', { ...READY, rsUid: 'rs2' })],
    want: /Deployment is not found/,
  },
  {
    name: 'revision annotation ahead of the ReplicaSet watch (rollout race): hold',
    scope: 'revision',
    deployment: dep('3'),
    replicaSets: [OLD, NEW],
    pods: [pod('a', { ...READY, rsUid: 'rs2' })],
    want: /revision 3\) is not seen yet/,
  },
  {
    name: 'Deployment without a revision yet: hold in revision scope',
    scope: 'revision',
    deployment: dep(undefined),
    replicaSets: [],
    pods: [],
    want: /no revision annotation/,
  },
  {
    name: 'deployment scope does not need the active ReplicaSet',
    scope: 'deployment',
    deployment: dep('3'),
    replicaSets: [OLD, NEW],
    pods: [pod('a', { ...READY, rsUid: 'rs2' })],
    want: ['a'],
  },
  {
    name: 'a ReplicaSet of another Deployment with the same revision is not the active one',
    scope: 'revision',
    deployment: dep('2'),
    replicaSets: [FOREIGN],
    pods: [pod('a', { ...READY, rsUid: 'rs9' })],
    want: /not seen yet/,
  },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const result = computePeers({ deployment: row.deployment, replicaSets: row.replicaSets, pods: row.pods }, row.scope, PORT);
    if (row.want instanceof RegExp) {
      t.equal(result.ok, false, 'held back');
      if (!result.ok) t.match(result.reason, row.want);
      return;
    }
    t.equal(result.ok, true);
    if (!result.ok) return;
    t.same(result.peers.map((p) => p.name), row.want);
    for (const p of result.peers) {
      t.equal(p.port, PORT);
      t.match(p.host, /^10\.0\.0\.\d+$/);
    }
    for (const [name, reason] of Object.entries(row.reasons ?? {})) {
      const explained = result.pods.find((p) => p.name === name);
      t.equal(explained?.included, false, `${name} left out`);
      t.match(explained?.reason ?? '', reason, `${name}: why`);
    }
  });
}

t.test('explanations carry the ReplicaSet and revision of each pod', async (t) => {
  const pods = [pod('x', { ...READY, rsUid: 'rs1' }), pod('y', { ip: '10.0.0.2', ready: 'True', rsUid: 'rs2' })];
  const result = computePeers({ deployment: dep('2'), replicaSets: [OLD, NEW], pods }, 'revision', PORT);
  t.equal(result.ok, true);
  t.match(result.pods[0], { name: 'x', ip: '10.0.0.1', ready: true, replicaSet: 'gw-old', revision: '1', included: false });
  if (result.ok) t.match(result, { revision: '2', activeReplicaSet: 'gw-new', servingReplicaSet: 'gw-new' });
});

t.test('narrowing skips objects without name or uid and reads Date-typed deletionTimestamp', async (t) => {
  t.equal(narrowPod({ metadata: { name: 'x' } }), undefined);
  t.equal(narrowPod(null), undefined);
  t.equal(narrowPod({ metadata: { name: 'x', uid: 'u', deletionTimestamp: new Date(0) } })?.metadata.deletionTimestamp !== undefined, true);
});

t.test('selectors render matchLabels and matchExpressions', async (t) => {
  t.same(renderSelector({ matchLabels: { b: '2', a: '1' }, matchExpressions: [] }), { query: 'a=1,b=2', skipped: [] });
  t.same(
    renderSelector({
      matchLabels: { app: 'gw' },
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['web', 'edge'] },
        { key: 'env', operator: 'NotIn', values: ['dev'] },
        { key: 'team', operator: 'Exists', values: [] },
        { key: 'legacy', operator: 'DoesNotExist', values: [] },
        { key: 'odd', operator: 'Gt', values: ['1'] },
      ],
    }),
    { query: 'app=gw,tier in (edge,web),env notin (dev),team,!legacy', skipped: ['odd Gt (1)'] },
  );
});
