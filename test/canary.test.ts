// The canary on a running sidecar (in-process) with real HTTP peers: what it writes to its own
// pod's token API (a fresh 256-bit key, the canary value, a short expiry) and that the key is
// never logged; that it probes every peer but its own pod on the probe path and names the one
// the key did not reach, in /readyz's body (readiness unchanged) and in its own metrics, apart
// from the checks' metrics; that it recovers; that a token API that refuses is counted every
// run, logged once per cause, and changes nothing for checks; and that shutdown mid-run records
// nothing. canary-e2e.test.ts runs it on real nginx pods.
import t from 'tap';
import { CANARY_VALUE, KEY_EXPIRY_MARGIN_MS, canaryReport } from '../sidecar/canary/canary.js';
import type { FanOutResult, PeerOutcome } from '../sidecar/model.js';
import { KeyvalsRelay, type KeyvalsWrite } from './support/keyvals-relay.js';
import { http } from './support/net.js';
import { startReplicas, type ReplicaServer } from './support/replica-server.js';
import { peersEnv, sendCheck, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { waitFor } from './support/wait.js';

const INTERVAL_MS = 1_000;
const CANARY_TIMEOUT_MS = 600;

t.test('canaryReport: departed peers left out; synced only when every other peer got the key', async (t) => {
  const result = (...outcomes: Array<[string, PeerOutcome, number | null]>): FanOutResult => ({
    verdict: 'Synced',
    durationMs: 1,
    peers: outcomes.map(([name, outcome, syncedAtMs]) => ({ name, outcome, attempts: 1, lastStatus: null, lastError: null, syncedAtMs })),
    probes: { synced: 0, missing: 0, error: 0, unexpected: 0, departed: 0, aborted: 0 },
    misconfigured: [],
    firstSyncedAt: null,
  });
  t.same(canaryReport(result(['a', 'synced', 3.5], ['b', 'departed', null]), 10, 20), {
    result: 'synced', startedAt: 10, endedAt: 20, cause: null, peers: [{ name: 'a', result: 'arrived', delayMs: 3.5 }],
  });
  t.same(canaryReport(result(['a', 'synced', 1], ['b', 'missing', null], ['c', 'error', null], ['d', 'timeout', null]), 1, 2).peers.map((p) => p.result), ['arrived', 'missing', 'error', 'timeout']);
  t.equal(canaryReport(result(['a', 'synced', 1], ['b', 'timeout', null]), 1, 2).result, 'incomplete');
  t.equal(canaryReport(result(), 1, 2).result, 'synced', 'a single replica: nothing to replicate to');
});

let replicas: ReplicaServer[];
/** Replicas zone_sync does not reach (they never get a write). */
const cutOff = new Set<ReplicaServer>();
/** The status the token API answers instead of writing (undefined: it writes). */
let refuse: number | undefined;
let relay: KeyvalsRelay;
let sidecar: RunningSidecar;

t.before(async () => {
  replicas = await startReplicas(4, { net: '127.0.121.', first: 10, port: 18121 });
  relay = await KeyvalsRelay.start(({ key }) => {
    if (refuse !== undefined) return refuse;
    for (const r of replicas) if (!cutOff.has(r)) r.give(key);
    return 201;
  });
  sidecar = await startSidecar({
    SYNCER_PEERS: peersEnv(replicas),
    SYNCER_CANARY_INTERVAL_MS: String(INTERVAL_MS),
    SYNCER_CANARY_TIMEOUT_MS: String(CANARY_TIMEOUT_MS),
    SYNCER_CANARY_URL: relay.url,
    SYNCER_PROBE_TIMEOUT_MS: '200',
  });
});
t.teardown(async () => {
  await sidecar.stop();
  await relay.close();
  await Promise.all(replicas.map((r) => r.close()));
});

interface ReadyBody {
  status: string;
  canary?: { result: string; cause: string | null; peers: number; arrived: number; slowestMs: number | null; notArrived: Array<{ name: string; result: string }> };
}
const readyz = async (): Promise<{ status: number; body: ReadyBody }> => {
  const res = await http(`${sidecar.opsUrl}/readyz`);
  return { status: res.status, body: JSON.parse(res.body) as ReadyBody };
};
const metrics = (): Promise<string> => sidecar.app.telemetry.metrics();
const sample = async (name: string): Promise<number> => {
  const line = (await metrics()).split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
};
const runs = async (): Promise<number> =>
  (await Promise.all(['synced', 'incomplete', 'write_failed'].map((r) => sample(`syncer_canary_runs_total{result="${r}"}`)))).reduce((a, b) => a + b, 0);
/** Waits until `n` more canary runs have ended than when called. */
async function nextRuns(n = 1): Promise<void> {
  const from = await runs();
  await waitFor(async () => (await runs()) >= from + n, `${n} more canary run(s)`, { timeoutMs: 20_000, intervalMs: 20 });
}
const canaryLines = (): string[] => sidecar.logs.filter((l) => l.includes('"msg":"canary'));

t.test('a replica that gets no writes is named; the others are clean; readiness and the checks are untouched', async (t) => {
  cutOff.add(replicas[3]!);
  await nextRuns(2);
  const ready = await readyz();
  t.equal(ready.status, 200, 'ready: the canary never decides readiness');
  t.match(ready.body.canary, { result: 'incomplete', cause: null, peers: 3, arrived: 2, notArrived: [{ name: 'pod-3', result: 'missing' }] });
  t.equal(ready.body.canary?.notArrived.length, 1, 'only pod-3');
  t.ok(ready.body.canary?.slowestMs !== null && ready.body.canary!.slowestMs! < CANARY_TIMEOUT_MS);

  for (const peer of ['pod-1', 'pod-2']) {
    t.ok((await sample(`syncer_canary_peer_results_total{peer="${peer}",result="arrived"}`)) >= 2, `${peer}: arrived every run`);
    for (const r of ['missing', 'error', 'timeout']) t.equal(await sample(`syncer_canary_peer_results_total{peer="${peer}",result="${r}"}`), 0, `${peer}: no ${r}`);
    t.ok((await sample(`syncer_canary_peer_delay_seconds{peer="${peer}"}`)) < CANARY_TIMEOUT_MS / 1000, `${peer}: a delay`);
  }
  t.ok((await sample('syncer_canary_peer_results_total{peer="pod-3",result="missing"}')) >= 2, 'pod-3: missing');
  t.equal(await sample('syncer_canary_peer_results_total{peer="pod-3",result="arrived"}'), 0);
  t.notMatch(await metrics(), /syncer_canary_peer_delay_seconds\{peer="pod-3"\}/, 'no delay for pod-3');
  t.notMatch(await metrics(), /peer="pod-0"/, 'its own pod is no peer of the canary');
  t.ok((await sample('syncer_canary_last_run_timestamp_seconds')) * 1000 > Date.now() - 10_000, 'the last run ended just now');

  // Apart from the checks: no check, no per-peer check figure, no probe counted.
  t.notMatch(await metrics(), /^syncer_checks_total\{/m, 'no check counted');
  t.notMatch(await metrics(), /^syncer_probes_total\{/m, 'canary probes are not check probes');
  t.match(await metrics(), /^syncer_peer_replication_delay_seconds_count\{peer="pod-1"\} 0$/m);
  t.match(await metrics(), /^syncer_peer_check_outcomes_total\{peer="pod-3",outcome="missing"\} 0$/m);

  // What it wrote, and where the key went.
  const writes: readonly KeyvalsWrite[] = relay.writes;
  t.ok(writes.length >= 2);
  for (const w of writes) {
    t.match(w, { zone: 'apigw_tokens', value: CANARY_VALUE, expireMs: CANARY_TIMEOUT_MS + KEY_EXPIRY_MARGIN_MS });
    t.match(w.key, /^[A-Za-z0-9_-]{43}$/, '256 random bits, base64url');
  }
  t.equal(new Set(writes.map((w) => w.key)).size, writes.length, 'a fresh key every run');
  const key = writes[0]!.key;
  t.ok(replicas.slice(1).every((r) => r.requestsFor(key) > 0), 'every peer was probed for it');
  t.equal(replicas[0]!.requestsFor(key), 0, 'its own pod was not');
  t.ok(replicas[3]!.requestsFor(key) > 1, 'the replica without it was asked again until the deadline');
  t.notOk(sidecar.logs.some((l) => writes.some((w) => l.includes(w.key))), 'no key in any log line (debug included)');
  t.equal(canaryLines().filter((l) => l.includes('did not reach these peers')).length, 1, 'one warning for the lasting cause, not one per run');

  // A check meanwhile is answered as ever.
  for (const r of replicas) r.give('check-token');
  t.equal((await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'check-token' })).tokenStatus, 'Synced');
});

t.test('replication back: the next run reaches every peer, and says so once', async (t) => {
  cutOff.clear();
  await nextRuns(2);
  const { body } = await readyz();
  t.match(body.canary, { result: 'synced', peers: 3, arrived: 3, notArrived: [] });
  t.equal(canaryLines().filter((l) => l.includes('reached every peer again')).length, 1);
});

t.test('a token API that refuses: each run counted write_failed, nothing probed, one warning per cause, checks unaffected', async (t) => {
  refuse = 503;
  t.teardown(() => void (refuse = undefined));
  const failedBefore = await sample('syncer_canary_runs_total{result="write_failed"}');
  const probesBefore = replicas.map((r) => r.requests);
  await nextRuns(2);
  t.ok((await sample('syncer_canary_runs_total{result="write_failed"}')) >= failedBefore + 2);
  t.match((await readyz()).body.canary, { result: 'write_failed', cause: 'HTTP 503', peers: 0, arrived: 0, slowestMs: null, notArrived: [] });
  t.same(replicas.map((r) => r.requests), probesBefore, 'no probe without a key written');
  t.equal(canaryLines().filter((l) => l.includes('did not take the canary key') && l.includes('"cause":"HTTP 503"')).length, 1, 'logged once');
  for (const r of replicas) r.give('check-token-2');
  t.equal((await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'check-token-2' })).tokenStatus, 'Synced');
  t.equal((await readyz()).status, 200);
});

t.test('shutdown during a run: it ends with the channels, and records nothing', async (t) => {
  // The run's probes hang at one peer; stop comes while the run waits for it.
  replicas[2]!.behaviour = { kind: 'hang' };
  const writes = relay.writes.length;
  await waitFor(() => relay.writes.length > writes, 'a run under way', { timeoutMs: 10_000 });
  const before = await runs();
  await sidecar.stop();
  t.equal(await runs(), before, 'no run recorded: cut by the stop, it said nothing about replication');
  t.equal((await readyz().catch(() => undefined))?.status, undefined, 'the ops listener is closed');
  t.notOk(sidecar.logs.some((l) => l.includes('a canary run failed')));
});
