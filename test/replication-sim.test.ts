// The replication simulator the end-to-end tests rely on (support/replication-sim.ts), against
// real nginx pods' token APIs: a write that fails must fail the test that awaits `replicated`,
// never pass as a replica that simply has not got the token yet.
import t from 'tap';
import { nginxMissing, PROBE_PATH, startNginxPeers, type NginxPeers, type NginxPod } from './support/nginx.js';
import { http } from './support/net.js';
import { ReplicationFailed, ReplicationSim } from './support/replication-sim.js';
import { requirePart } from './support/required.js';

let peers: NginxPeers;

t.before(async () => {
  requirePart(nginxMissing());
  peers = await startNginxPeers(3, '127.0.43.', 10);
});
t.teardown(() => peers?.stop());

let seq = 0;
const newToken = (what: string): string => `sim-${what}-${process.pid}-${++seq}`;
const holds = async (pod: NginxPod, token: string): Promise<boolean> =>
  (await http(`${pod.probeUrl}${PROBE_PATH}`, { headers: { authorization: `Bearer ${token}` } })).status === 200;
const simOf = (pods: readonly NginxPod[]): ReplicationSim => {
  const [origin, ...others] = pods.map((p) => ({ name: p.name, apiUrl: p.apiUrl }));
  if (origin === undefined) throw new Error('no pods');
  return new ReplicationSim(origin, others);
};

t.test('every write lands: `replicated` resolves with each replica, and each holds the token', async (t) => {
  const sim = simOf(peers.pods);
  t.teardown(() => sim.stop());
  const token = newToken('all');
  const issued = await sim.issue(token, { 'pod-2': 20 });
  const writes = await issued.replicated;
  t.same(writes.map((w) => w.name), ['pod-1', 'pod-2']);
  t.ok(writes.every((w) => w.atMs !== undefined), 'every write completed');
  t.ok((writes[1]?.atMs ?? 0) >= 20, 'pod-2 written after its lag');
  t.same(await Promise.all(peers.pods.map((p) => holds(p, token))), [true, true, true]);
});

t.test("'never' and cancelled writes are not failures: atMs undefined, and the replica lacks the token", async (t) => {
  const sim = simOf(peers.pods);
  t.teardown(() => sim.stop());
  const token = newToken('never');
  const issued = await sim.issue(token, { 'pod-1': 'never', 'pod-2': 60_000 });
  issued.cancel();
  t.same(await issued.replicated, [
    { name: 'pod-1', atMs: undefined },
    { name: 'pod-2', atMs: undefined },
  ]);
  t.same(await Promise.all(peers.pods.map((p) => holds(p, token))), [true, false, false]);
});

t.test('a write to a dead replica rejects `replicated`, naming the replica and the cause', async (t) => {
  // A separate set of pods: this one stops a replica for good.
  const own = await startNginxPeers(3, '127.0.44.', 10);
  t.teardown(() => own.stop());
  const sim = simOf(own.pods);
  t.teardown(() => sim.stop());
  const [, live, dead] = own.pods;
  if (live === undefined || dead === undefined) throw new Error('three pods expected');
  await dead.stop();
  const token = newToken('dead');
  const issued = await sim.issue(token);
  const err: unknown = await issued.replicated.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, ReplicationFailed, 'rejected');
  if (!(err instanceof ReplicationFailed)) return;
  t.same(err.failures.map((f) => f.name), [dead.name], 'only the dead replica failed');
  t.match(err.failures[0]?.error, /ECONNREFUSED/);
  t.match(err.message, new RegExp(`^replication write failed: ${dead.name}: .*ECONNREFUSED`));
  t.equal(await holds(live, token), true, 'the live replica was still written');
  // The same issue with 'never' for the dead replica is not a failure.
  const spared = await (await sim.issue(newToken('dead-never'), { [dead.name]: 'never' })).replicated;
  t.same(spared.map((w) => [w.name, w.atMs !== undefined]), [[live.name, true], [dead.name, false]], "'never' for the dead replica: nothing failed");
});
