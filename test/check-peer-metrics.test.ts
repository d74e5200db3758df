// Per-peer replication figures from real checks against HTTP peers, read from the live /metrics:
// each peer's delay (from the check's start to its first 200) where the token arrived, the failed
// outcome where it did not; a peer that leaves takes its series with it, and a check that probed
// it, answered after it left, does not bring them back.
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { http } from './support/net.js';
import { startReplicas, type ReplicaServer } from './support/replica-server.js';
import { peersEnv, sendCheck, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { waitFor } from './support/wait.js';

let replicas: ReplicaServer[];
let sidecar: RunningSidecar;
let seq = 0;
const newToken = (): string => `peer-metrics-${process.pid}-${++seq}`;

t.before(async () => {
  replicas = await startReplicas(4, { net: '127.0.123.', first: 10, port: 18123 });
  sidecar = await startSidecar({ SYNCER_PEERS: peersEnv(replicas), SYNCER_SYNCED_TTL_MS: '0', SYNCER_HARD_TIMEOUT_MS: '1500' });
});
t.teardown(async () => {
  await sidecar?.stop();
  await Promise.all(replicas.map((r) => r.close()));
});

/** The live /metrics, as Prometheus scrapes it (the ops listener renders at most every 100 ms). */
async function scrape(): Promise<string> {
  return (await http(`${sidecar.opsUrl}/metrics`)).body;
}
/** One sample's value in a scrape. */
async function sample(text: string, name: string): Promise<number | undefined> {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}
/** A scrape rendered after `after` (performance.now()): past the ops listener's 100 ms render cache. */
async function freshScrape(after: number): Promise<string> {
  return waitFor(async () => (performance.now() - after > 150 ? scrape() : undefined), 'a render after the check');
}

t.test("each peer's delay where the token arrived, the failed outcome where it did not", async (t) => {
  const lagMs = 300;
  const token = newToken();
  // Held by pod-1 at once, by pod-3 from lagMs on, never by pod-2.
  const from = performance.now();
  replicas[1]!.give(token);
  replicas[3]!.give(token, lagMs);
  const reply = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token });
  // The check's own clock began (durationMs before its answer left) at most this long after
  // the token was given; the answer reached us after it left, so this errs on the late side.
  const startedLate = performance.now() - from - (reply.body.durationMs ?? 0);
  t.equal(reply.tokenStatus, 'Partialy', 'pod-2 never gets it');
  const text = await freshScrape(performance.now());
  const delay = (peer: string, part: string) => sample(text, `syncer_peer_replication_delay_seconds_${part}{peer="${peer}"}`);
  t.equal(await delay('pod-1', 'count'), 1);
  t.equal(await delay('pod-3', 'count'), 1);
  t.equal(await delay('pod-2', 'count'), 0, 'no delay for the replica that never got it');
  t.equal(await sample(text, 'syncer_peer_check_outcomes_total{peer="pod-2",outcome="missing"}'), 1);
  for (const peer of ['pod-1', 'pod-3']) t.equal(await sample(text, `syncer_peer_check_outcomes_total{peer="${peer}",outcome="missing"}`), 0, `${peer}: nothing failed`);
  // pod-3's delay: no earlier than it held the token (less what passed before the check began;
  // the replica and this test read the same monotonic clock), no later than the answer.
  const pod3 = (await delay('pod-3', 'sum'))! * 1000;
  t.ok(pod3 >= lagMs - startedLate && pod3 <= reply.elapsedMs, `pod-3 seen ${pod3.toFixed(1)} ms into the check (lag ${lagMs} ms, the check began ≤ ${startedLate.toFixed(1)} ms after the token was given, answered in ${reply.elapsedMs.toFixed(0)} ms)`);
  t.ok((await delay('pod-1', 'sum'))! * 1000 < pod3, 'pod-1, which held it at once, was seen before it');
  // Its one observation sits in the buckets at or above its delay, whatever the machine's load made it.
  t.equal(await sample(text, 'syncer_peer_replication_delay_seconds_bucket{le="0.25",peer="pod-3"}'), pod3 <= 250 ? 1 : 0, 'in the 0.25 s bucket exactly when seen within 250 ms');
  t.equal(await sample(text, 'syncer_peer_replication_delay_seconds_bucket{le="0.5",peer="pod-3"}'), pod3 <= 500 ? 1 : 0, 'in the 0.5 s bucket exactly when seen within 500 ms');
  t.equal(await sample(text, 'syncer_peer_replication_delay_seconds_bucket{le="+Inf",peer="pod-3"}'), 1);
});

t.test('a peer that leaves loses its series; a check that probed it and ends later does not bring them back', async (t) => {
  const set = sidecar.app.store.current()!;
  const token = newToken();
  // pod-1 answers 200 at once; pod-2 and pod-3 keep the check waiting (401) until they get the token.
  replicas[1]!.give(token);
  const pending = sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token });
  // pod-1's answer is out once it has been asked and nothing is in flight there; two more probes
  // of pod-2 after that come from event-loop turns that read it.
  await waitFor(() => replicas[1]!.requestsFor(token) === 1 && replicas[1]!.inFlight === 0, "pod-1's answer sent", { intervalMs: 1 });
  const asked = replicas[2]!.requestsFor(token);
  await waitFor(() => replicas[2]!.requestsFor(token) >= asked + 2, 'two more probes of pod-2', { intervalMs: 1 });
  sidecar.app.store.publish(set.peers.filter((p) => p.name !== 'pod-1'));
  t.notMatch(await freshScrape(performance.now()), /peer="pod-1"/, 'pod-1 left: no series of it');
  replicas[2]!.give(token);
  replicas[3]!.give(token);
  const reply = await pending;
  t.same(Object.fromEntries((reply.body.peers ?? []).map((p) => [p.name, p.outcome])), { 'pod-1': 'synced', 'pod-2': 'synced', 'pod-3': 'synced' }, 'pod-1 answered while it was a peer');
  const after = await freshScrape(performance.now());
  t.notMatch(after, /peer="pod-1"/, 'the check that ended after pod-1 left did not recreate its series');
  t.match(after, /^syncer_peer_replication_delay_seconds_count\{peer="pod-2"\} [1-9]/m, 'the peers that stayed are counted');

  sidecar.app.store.publish(set.peers);
  t.match(await freshScrape(performance.now()), /^syncer_peer_replication_delay_seconds_count\{peer="pod-1"\} 0$/m, 'pod-1 back: from zero');
});
