// Per-peer series (telemetry/peer-metrics.ts through Telemetry, as app.ts feeds it): a fixed set
// per peer of the current set, at zero from the moment it joins; the replication delay and the
// failed outcomes from fan-out results; the canary's per-peer results and delays; every series of
// a peer removed when it leaves, and not brought back by a fan-out or canary run that ends after.
// check-peer-metrics.test.ts does the same on a running sidecar with real peers.
import t from 'tap';
import type { CanaryReport, FanOutResult, Peer, PeerOutcome, PeerReport } from '../sidecar/model.js';
import { REPLICATION_DELAY_BUCKETS } from '../sidecar/telemetry/peer-metrics.js';
import { Telemetry } from '../sidecar/telemetry/metrics.js';

const peer = (name: string, host = `10.0.0.${name.length}`): Peer => ({ name, host, port: 8001 });
let version = 0;
function publish(tel: Telemetry, peers: readonly Peer[], removed: readonly Peer[] = []): void {
  tel.changed({ version: ++version, peers }, { added: peers, removed });
}

const report = (name: string, outcome: PeerOutcome, syncedAtMs: number | null = null): PeerReport => ({
  name, outcome, attempts: 1, lastStatus: null, lastError: null, syncedAtMs,
});
const fanOut = (...peers: PeerReport[]): FanOutResult => ({
  verdict: 'Synced', durationMs: 1, peers, probes: { synced: 0, missing: 0, error: 0, unexpected: 0, departed: 0, aborted: 0 }, misconfigured: [], firstSyncedAt: null,
});
const canaryRun = (peers: CanaryReport['peers']): CanaryReport => ({ result: 'incomplete', startedAt: 1_000, endedAt: 2_000, cause: null, peers });

/** Every sample line of the per-peer series, for one peer or all. */
async function series(tel: Telemetry, name?: string): Promise<string[]> {
  const lines = (await tel.metrics()).split('\n').filter((l) => /^syncer_(peer|canary_peer)_/.test(l));
  return name === undefined ? lines : lines.filter((l) => l.includes(`peer="${name}"`));
}

async function value(tel: Telemetry, sample: string): Promise<number | undefined> {
  const line = (await tel.metrics()).split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

t.test('buckets: at most 8, the ones the contract requires, covering 1 ms – 2 s', async (t) => {
  t.ok(REPLICATION_DELAY_BUCKETS.length <= 8);
  for (const b of [0.1, 0.25, 0.5, 1]) t.ok(REPLICATION_DELAY_BUCKETS.includes(b), `${b} s is a bucket`);
  t.ok(REPLICATION_DELAY_BUCKETS[0]! <= 0.005 && REPLICATION_DELAY_BUCKETS.at(-1)! >= 2);
});

t.test('a peer that joins has its fixed set of series at once, all at zero', async (t) => {
  const tel = new Telemetry({ defaultMetrics: false });
  publish(tel, [peer('apigw-1')]);
  const lines = await series(tel, 'apigw-1');
  // histogram: a bucket per bound + Inf, _sum, _count; outcomes: missing, error, timeout.
  t.equal(lines.length, REPLICATION_DELAY_BUCKETS.length + 3 + 3, lines.join('\n'));
  t.ok(lines.every((l) => l.endsWith(' 0')), 'all zero');
  t.same(await series(tel, 'apigw-2'), [], 'nothing for a peer that is not in the set');
});

t.test("the sidecar's own pod has no per-peer series (matched by name or IP)", async (t) => {
  const tel = new Telemetry({ defaultMetrics: false });
  tel.ownPod({ name: 'apigw-0', ip: '10.0.0.9' });
  tel.canaryOn();
  publish(tel, [peer('apigw-0', '10.0.0.8'), peer('10.0.0.9', '10.0.0.9'), peer('apigw-1')]);
  t.same(await series(tel, 'apigw-0'), []);
  t.same(await series(tel, '10.0.0.9'), [], 'DNS discovery names peers by address');
  t.ok((await series(tel, 'apigw-1')).length > 0);
  tel.fanOutDone(fanOut(report('apigw-0', 'missing')));
  t.same(await series(tel, 'apigw-0'), [], 'a check from another origin that probed it adds nothing');
});

t.test('fan-out results: the delay of each 200, the count of each failed outcome; departed and unknown peers add nothing', async (t) => {
  const tel = new Telemetry({ defaultMetrics: false });
  publish(tel, [peer('a'), peer('b'), peer('c')]);
  tel.fanOutDone(fanOut(report('a', 'synced', 3), report('b', 'missing'), report('c', 'timeout'), report('gone', 'synced', 1)));
  tel.fanOutDone(fanOut(report('a', 'synced', 180), report('b', 'error'), report('c', 'departed')));
  t.equal(await value(tel, 'syncer_peer_replication_delay_seconds_count{peer="a"}'), 2);
  t.equal(await value(tel, 'syncer_peer_replication_delay_seconds_sum{peer="a"}'), 0.183);
  t.equal(await value(tel, 'syncer_peer_replication_delay_seconds_bucket{le="0.005",peer="a"}'), 1, '3 ms: the first bucket');
  t.equal(await value(tel, 'syncer_peer_replication_delay_seconds_bucket{le="0.1",peer="a"}'), 1);
  t.equal(await value(tel, 'syncer_peer_replication_delay_seconds_bucket{le="0.25",peer="a"}'), 2, '180 ms: by 0.25 s');
  t.equal(await value(tel, 'syncer_peer_check_outcomes_total{peer="b",outcome="missing"}'), 1);
  t.equal(await value(tel, 'syncer_peer_check_outcomes_total{peer="b",outcome="error"}'), 1);
  t.equal(await value(tel, 'syncer_peer_check_outcomes_total{peer="c",outcome="timeout"}'), 1, 'departed added nothing to c');
  t.equal(await value(tel, 'syncer_peer_replication_delay_seconds_count{peer="c"}'), 0);
  t.same(await series(tel, 'gone'), [], 'a report about a peer outside the set creates nothing');
});

t.test('a peer that leaves takes every series with it; a fan-out or canary run ending after does not bring them back', async (t) => {
  const tel = new Telemetry({ defaultMetrics: false });
  tel.canaryOn();
  const [a, b] = [peer('a'), peer('b')];
  publish(tel, [a, b]);
  tel.fanOutDone(fanOut(report('b', 'synced', 2), report('b', 'missing')));
  tel.canaryDone(canaryRun([{ name: 'b', result: 'arrived', delayMs: 4 }]));
  t.ok((await series(tel, 'b')).length > 0);
  tel.changed({ version: ++version, peers: [a] }, { added: [], removed: [b] });
  t.same(await series(tel, 'b'), [], 'no series of b after it left');
  // A check (or canary run) that began while b was a peer, and ends now.
  tel.fanOutDone(fanOut(report('a', 'synced', 1), report('b', 'synced', 2), report('b', 'timeout')));
  tel.canaryDone(canaryRun([{ name: 'b', result: 'missing', delayMs: null }, { name: 'b', result: 'arrived', delayMs: 9 }]));
  t.same(await series(tel, 'b'), [], 'still none');
  t.equal(await value(tel, 'syncer_peer_replication_delay_seconds_count{peer="a"}'), 1, 'the peer that stayed is counted');
  publish(tel, [a, b]);
  t.equal(await value(tel, 'syncer_peer_replication_delay_seconds_count{peer="b"}'), 0, 'b back: its series start again from zero');
  t.equal(await value(tel, 'syncer_canary_peer_results_total{peer="b",result="arrived"}'), 0);
});

t.test('a peer that moves to a new address under the same name keeps its series', async (t) => {
  const tel = new Telemetry({ defaultMetrics: false });
  publish(tel, [peer('a', '10.0.0.1')]);
  tel.fanOutDone(fanOut(report('a', 'missing')));
  tel.changed({ version: ++version, peers: [peer('a', '10.0.0.2')] }, { added: [peer('a', '10.0.0.2')], removed: [peer('a', '10.0.0.1')] });
  t.equal(await value(tel, 'syncer_peer_check_outcomes_total{peer="a",outcome="missing"}'), 1, 'the label is the name: same peer for an operator');
});

t.test('canary: run results, last run time, per-peer results and the delay of the last arrival', async (t) => {
  const tel = new Telemetry({ defaultMetrics: false });
  publish(tel, [peer('a'), peer('b')]);
  t.same((await series(tel)).filter((l) => l.startsWith('syncer_canary')), [], 'no canary series while it is off');
  tel.canaryOn();
  const text = await tel.metrics();
  for (const result of ['synced', 'incomplete', 'write_failed']) t.match(text, new RegExp(`^syncer_canary_runs_total\\{result="${result}"\\} 0$`, 'm'));
  t.notMatch(text, /syncer_canary_last_run_timestamp_seconds \d/, 'no last-run time before a run ended');
  t.equal((await series(tel, 'a')).filter((l) => l.startsWith('syncer_canary_peer_results_total')).length, 4, 'peers already in the set get their canary series');
  tel.canaryDone(canaryRun([{ name: 'a', result: 'arrived', delayMs: 12.5 }, { name: 'b', result: 'missing', delayMs: null }]));
  tel.canaryDone({ result: 'write_failed', startedAt: 3_000, endedAt: 3_500, cause: 'ECONNREFUSED', peers: [] });
  t.equal(await value(tel, 'syncer_canary_runs_total{result="incomplete"}'), 1);
  t.equal(await value(tel, 'syncer_canary_runs_total{result="write_failed"}'), 1);
  t.equal(await value(tel, 'syncer_canary_last_run_timestamp_seconds'), 3.5);
  t.equal(await value(tel, 'syncer_canary_peer_results_total{peer="a",result="arrived"}'), 1);
  t.equal(await value(tel, 'syncer_canary_peer_results_total{peer="b",result="missing"}'), 1);
  t.equal(await value(tel, 'syncer_canary_peer_delay_seconds{peer="a"}'), 0.0125);
  t.equal(await value(tel, 'syncer_canary_peer_delay_seconds{peer="b"}'), undefined, 'no delay for a peer the key never reached');
  t.equal(await value(tel, 'syncer_peer_check_outcomes_total{peer="b",outcome="missing"}'), 0, 'the canary is not a check');
});
