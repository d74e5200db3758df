// A peer that leaves the peer set while a check is probing it (a rollout, a scale-down) is no
// longer judged: real nginx peers, a check in flight, the set changed under it. The check still
// answers about the replicas that remain, and the departed peer's pool is gone. The same for a
// peer that leaves while its check waits to retry it past the deadline.
import t from 'tap';
import { nginxMissing, startNginxPeers, writeToken, type NginxPeers } from './support/nginx.js';
import { startReplicas } from './support/replica-server.js';
import { peersEnv, sendCheck, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { connectionsOf } from './support/tcp-sockets.js';
import { boundOf, withLoopDelay } from './support/timing-floor.js';
import { waitFor } from './support/wait.js';
import { requirePart } from './support/required.js';

/** The longest pause between two probes of one peer (SYNCER_RETRY_MAX_DELAY_MS, jitter up): a departure is seen by then. */
const RETRY_MAX_DELAY_MS = 200;
const RETRY_JITTER = 0.2;
/** What issue 9 allows on top of that, besides the floors measured in the same run (timing-floor.ts). */
const ALLOWANCE_MS = 100;

let peers: NginxPeers;
let sidecar: RunningSidecar;
/** A check every peer answers at once: the hop floor of this run. */
let hopMs = 0;

t.before(async () => {
  requirePart(nginxMissing());
  peers = await startNginxPeers(4, '127.0.20.', 10);
  sidecar = await startSidecar({
    SYNCER_PEERS: peers.peersEnv,
    SYNCER_SYNCED_TTL_MS: '0',
    SYNCER_RETRY_MAX_DELAY_MS: String(RETRY_MAX_DELAY_MS),
    SYNCER_RETRY_JITTER: String(RETRY_JITTER),
  });
  const token = `departed-${process.pid}-hop`;
  await Promise.all(peers.pods.map((p) => writeToken(p.apiUrl, token)));
  hopMs = (await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token })).elapsedMs;
});
t.teardown(async () => {
  await sidecar?.stop();
  await peers?.stop();
});

/** Resolves once the sidecar has a check in flight (read in-process: no HTTP cache in between). */
const checkInFlight = (): Promise<unknown> =>
  waitFor(async () => /^syncer_checks_in_flight 1$/m.test(await sidecar.app.telemetry.metrics()), 'the check to be in flight', { intervalMs: 2 });

t.test('a peer without the token leaves mid-check: Synced, the peer reported departed', async (t) => {
  const [, a, b, leaving] = peers.pods;
  const token = `departed-${process.pid}-1`;
  await Promise.all([a!, b!].map((p) => writeToken(p.apiUrl, token)));
  const set = sidecar.app.store.current()!;
  const pending = withLoopDelay(() => sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token }));
  await checkInFlight();
  // pod-3 answers 401 and is being retried: the rollout takes it away.
  sidecar.app.store.publish(set.peers.filter((p) => p.name !== leaving!.name));
  const publishedAt = performance.now();
  const { result: r, lateMs } = await pending;
  const afterPublish = performance.now() - publishedAt;
  t.equal(r.tokenStatus, 'Synced', 'every replica that is still a peer holds the token');
  t.same(
    Object.fromEntries((r.body.peers ?? []).map((p) => [p.name, p.outcome])),
    { 'pod-1': 'synced', 'pod-2': 'synced', 'pod-3': 'departed' },
    'the departed peer is reported, and not counted',
  );
  const bound = boundOf(RETRY_MAX_DELAY_MS * (1 + RETRY_JITTER), ALLOWANCE_MS, { lateMs, hopMs });
  t.ok(afterPublish <= bound.ms, `answered ${afterPublish.toFixed(0)} ms after the peer left, by its next retry, not after its retries (bound ${bound.why})`);
  await waitFor(() => connectionsOf(process.pid, peers.probePort).every((c) => c.remote !== leaving!.host), 'the pool to the departed peer to close');
  sidecar.app.store.publish(set.peers);
});

t.test('a peer killed and removed mid-check: Synced, not Partialy', async (t) => {
  const [, a, b, victim] = peers.pods;
  const token = `departed-${process.pid}-2`;
  await Promise.all([a!, b!].map((p) => writeToken(p.apiUrl, token)));
  const set = sidecar.app.store.current()!;
  const pending = sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token });
  await checkInFlight();
  // The pod dies (its probes now fail to connect), then discovery drops it.
  await victim!.stop();
  sidecar.app.store.publish(set.peers.filter((p) => p.name !== victim!.name));
  const r = await pending;
  t.equal(r.tokenStatus, 'Synced');
  t.equal(r.body.peers?.find((p) => p.name === victim!.name)?.outcome, 'departed');
  const after = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token });
  t.same((after.body.peers ?? []).map((p) => p.name), ['pod-1', 'pod-2'], 'the next check probes only the peers that remain');
});

t.test('a peer that stopped answering leaves while its retry waits past the deadline: departed, not Timeout', async (t) => {
  const replicas = await startReplicas(3, { net: '127.0.20.', first: 30, port: 18133 });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const [, holder, silent] = replicas;
  const s = await startSidecar({
    SYNCER_PEERS: peersEnv(replicas),
    SYNCER_SYNCED_TTL_MS: '0',
    SYNCER_HARD_TIMEOUT_MS: '3000',
    SYNCER_PROBE_TIMEOUT_MS: '100',
    // A probe cut by the probe timeout is retried until the deadline, whatever the retry window
    // says: this one's retry would come 5 s after it, past the 3 s deadline.
    SYNCER_RETRY_DELAY_MS: '5000',
    SYNCER_RETRY_MAX_DELAY_MS: '5000',
  });
  t.teardown(() => s.stop());
  const token = `departed-${process.pid}-3`;
  holder!.give(token);
  silent!.behaviour = { kind: 'hang' };
  const set = s.app.store.current()!;
  const pending = sendCheck(s.apiUrl, { 'X-Auth-Token': token });
  // Its one probe reached it and was cut by the probe timeout: the run now waits for its retry.
  await waitFor(() => silent!.requests === 1 && silent!.inFlight === 0, 'the silent peer\'s probe to time out');
  s.app.store.publish(set.peers.filter((p) => p.name !== 'pod-2'));
  const r = await pending;
  t.same(r.body.peers?.find((p) => p.name === 'pod-2'), { name: 'pod-2', outcome: 'departed', attempts: 1, lastStatus: null, lastError: 'PROBE_TIMEOUT' }, 'the pod that is gone is departed');
  t.same([r.status, r.tokenStatus], [200, 'Synced'], 'and the verdict is about the peers that remain');
});
