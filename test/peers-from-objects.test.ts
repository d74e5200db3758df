// computePeers beyond the table of discovery-peers.test.ts: the order of peers, which ReplicaSet
// serves in each scope, and every field of the per-pod explanation the `peers` command prints.
import t from 'tap';
import { narrowDeployment, narrowPod, narrowReplicaSet, REVISION_ANNOTATION, type DeploymentLite, type PodLite, type ReplicaSetLite } from '../sidecar/discovery/kubernetes/objects.js';
import { computePeers } from '../sidecar/discovery/kubernetes/peers-from-objects.js';
import { deploymentJson, podJson, replicaSetJson, type PodShape } from './support/discovery-harness.js';

const PORT = 8080;

function narrowed<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('fixture does not narrow');
  return value;
}
const dep = (revision: string | undefined): DeploymentLite => narrowed(narrowDeployment(deploymentJson('gw', 'dep', revision)));
const rs = (name: string, uid: string, revision: string): ReplicaSetLite => narrowed(narrowReplicaSet(replicaSetJson(name, uid, 'dep', revision)));
const pod = (name: string, shape: PodShape): PodLite => narrowed(narrowPod(podJson(name, shape)));
const ready = (rsUid: string, ip: string): PodShape => ({ rsUid, ip, ready: 'True' });

const OLD = rs('gw-old', 'rs1', '1');
const NEW = rs('gw-new', 'rs2', '2');

t.test('peers come sorted by pod name in code-unit order, whatever order the pods arrive in', async (t) => {
  const pods = [pod('gw-9', ready('rs2', '10.0.0.9')), pod('gw-b', ready('rs2', '10.0.0.2')), pod('gw-10', ready('rs2', '10.0.0.10')), pod('gw-a', ready('rs2', '10.0.0.1'))];
  const result = computePeers({ deployment: dep('2'), replicaSets: [NEW], pods }, 'revision', PORT);
  t.equal(result.ok, true);
  if (!result.ok) return;
  t.same(result.peers, [
    { name: 'gw-10', host: '10.0.0.10', port: PORT },
    { name: 'gw-9', host: '10.0.0.9', port: PORT },
    { name: 'gw-a', host: '10.0.0.1', port: PORT },
    { name: 'gw-b', host: '10.0.0.2', port: PORT },
  ]);
  t.same(result.pods.map((p) => p.name), ['gw-10', 'gw-9', 'gw-a', 'gw-b'], 'explanations in the same order');
  const reversed = computePeers({ deployment: dep('2'), replicaSets: [NEW], pods: [...pods].reverse() }, 'revision', PORT);
  t.same(reversed.ok && reversed.peers.map((p) => p.name), ['gw-10', 'gw-9', 'gw-a', 'gw-b'], 'the input order does not matter');
});

t.test('each pod is explained: included pods say "peer", every field filled from the objects', async (t) => {
  const pods = [pod('a', ready('rs2', '10.0.0.1')), pod('b', { rsUid: 'rs2', ip: '10.0.0.2', ready: 'False' }), pod('c', ready('rs1', '10.0.0.3'))];
  const result = computePeers({ deployment: dep('2'), replicaSets: [OLD, NEW], pods }, 'revision', PORT);
  t.same(result.pods, [
    { name: 'a', ip: '10.0.0.1', ready: true, replicaSet: 'gw-new', revision: '2', included: true, reason: 'peer' },
    { name: 'b', ip: '10.0.0.2', ready: false, replicaSet: 'gw-new', revision: '2', included: false, reason: 'not Ready (False)' },
    { name: 'c', ip: '10.0.0.3', ready: true, replicaSet: 'gw-old', revision: '1', included: false, reason: 'other revision (serving is 2)' },
  ]);
});

t.test('deployment scope: every ReplicaSet\'s ready pods, and the active ReplicaSet is the one serving', async (t) => {
  const pods = [pod('new-1', ready('rs2', '10.0.0.2')), pod('old-1', ready('rs1', '10.0.0.1'))];
  const result = computePeers({ deployment: dep('2'), replicaSets: [OLD, NEW], pods }, 'deployment', PORT);
  t.match(result, { ok: true, revision: '2', activeReplicaSet: 'gw-new', servingReplicaSet: 'gw-new' });
  t.same(result.ok && result.peers.map((p) => p.name), ['new-1', 'old-1']);
  // No pod ready anywhere: still nobody is probed, and the serving ReplicaSet stays the active one.
  const unready = [pod('new-1', { rsUid: 'rs2', ip: '10.0.0.2', ready: 'False' }), pod('old-1', { rsUid: 'rs1', ip: '10.0.0.1', ready: 'False' })];
  const none = computePeers({ deployment: dep('2'), replicaSets: [OLD, NEW], pods: unready }, 'deployment', PORT);
  t.match(none, { ok: true, peers: [], activeReplicaSet: 'gw-new', servingReplicaSet: 'gw-new' });
  t.same(none.pods.map((p) => p.reason), ['not Ready (False)', 'not Ready (False)']);
});

t.test('revision scope, the active ReplicaSet not seen yet: held back, and no older revision stands in', async (t) => {
  // Revision 3 is announced on the Deployment; the watch has delivered only revisions 1 and 2.
  const pods = [pod('new-1', ready('rs2', '10.0.0.2')), pod('old-1', ready('rs1', '10.0.0.1'))];
  const result = computePeers({ deployment: dep('3'), replicaSets: [OLD, NEW], pods }, 'revision', PORT);
  t.same(result, {
    ok: false,
    reason: 'the active ReplicaSet (revision 3) is not seen yet',
    pods: [
      { name: 'new-1', ip: '10.0.0.2', ready: true, replicaSet: 'gw-new', revision: '2', included: false, reason: 'other revision (serving is ?)' },
      { name: 'old-1', ip: '10.0.0.1', ready: true, replicaSet: 'gw-old', revision: '1', included: false, reason: 'other revision (serving is ?)' },
    ],
  });
});

t.test('a Deployment without a revision has no active ReplicaSet, even beside one without a revision', async (t) => {
  const json = replicaSetJson('gw-bare', 'rs0', 'dep', '1');
  const meta = json['metadata'] as Record<string, unknown>;
  const unannotated = narrowed(narrowReplicaSet({ ...json, metadata: { ...meta, annotations: {} } }));
  t.equal(unannotated.metadata.annotations[REVISION_ANNOTATION], undefined, 'fixture: no revision annotation');
  const pods = [pod('a', ready('rs0', '10.0.0.1'))];
  const result = computePeers({ deployment: dep(undefined), replicaSets: [unannotated], pods }, 'revision', PORT);
  t.match(result, { ok: false, reason: 'the Deployment has no revision annotation yet' });
  const wide = computePeers({ deployment: dep(undefined), replicaSets: [unannotated], pods }, 'deployment', PORT);
  t.match(wide, { ok: true, activeReplicaSet: undefined, servingReplicaSet: undefined });
  t.same(wide.ok && wide.peers.map((p) => p.name), ['a'], 'deployment scope needs no revision');
});
