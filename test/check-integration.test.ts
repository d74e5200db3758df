// The check against real HTTP peers on distinct loopback addresses (same port, like pods).
import t from 'tap';
import { startReplicas, type ReplicaServer } from './support/replica-server.js';
import { peersEnv, sendCheck, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { waitFor } from './support/wait.js';

const HARD_TIMEOUT_MS = 600;
const MAX_RETRIES = 5;
const DEADLINE_MARGIN_MS = 150; // scheduling slack on a loaded 2-core machine; the deadline itself is the bound
let tokenSeq = 0;
const newToken = (): string => `tok-${process.pid}-${++tokenSeq}-SECRETMARK`;

let replicas: ReplicaServer[];
let sidecar: RunningSidecar;

t.before(async () => {
  replicas = await startReplicas(4, { net: '127.0.1.', first: 10, port: 18081 });
  sidecar = await startSidecar({
    SYNCER_PEERS: peersEnv(replicas),
    SYNCER_HARD_TIMEOUT_MS: String(HARD_TIMEOUT_MS),
    SYNCER_PROBE_TIMEOUT_MS: '150',
    SYNCER_RETRY_DELAY_MS: '5',
    SYNCER_RETRY_MAX_DELAY_MS: '40',
    // Doubling delays: probes at 0, 5, 10, 20, 40 and 80 ms cover the 60 ms lag below.
    SYNCER_RETRY_BACKOFF: '2',
    SYNCER_MAX_RETRIES: String(MAX_RETRIES),
    // These tests are about probing: every check probes (the Synced memo has check-memo.test.ts).
    SYNCER_SYNCED_TTL_MS: '0',
  });
});
t.teardown(async () => {
  await sidecar.stop();
  await Promise.all(replicas.map((r) => r.close()));
});
t.beforeEach(() => {
  for (const r of replicas) r.behaviour = { kind: 'store' };
});

const others = (): ReplicaServer[] => replicas.slice(1); // pod-0 is the origin by default
const check = (token: string, origin?: string) =>
  sendCheck(sidecar.apiUrl, origin === undefined ? { 'X-Auth-Token': token } : { 'X-Auth-Token': token, 'X-Nginx-Origin': origin });
const outcomes = (body: Awaited<ReturnType<typeof check>>['body']) => Object.fromEntries((body.peers ?? []).map((p) => [p.name, p.outcome]));

t.test('token on every peer → Synced after one probe each, origin excluded', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  const res = await check(token);
  t.equal(res.status, 200);
  t.equal(res.tokenStatus, 'Synced');
  t.equal(res.body.verdict, 'Synced');
  t.same(outcomes(res.body), { 'pod-1': 'synced', 'pod-2': 'synced', 'pod-3': 'synced' });
  t.same(res.body.peers?.map((p) => [p.attempts, p.lastStatus]), [[1, 200], [1, 200], [1, 200]]);
  t.equal(replicas[0]!.requestsFor(token), 0, 'the origin is never probed');
});

t.test('replication lag shorter than the deadline → Synced after retries', async (t) => {
  const token = newToken();
  for (const r of others()) r.give(token, 60);
  const res = await check(token);
  t.equal(res.tokenStatus, 'Synced');
  t.ok(res.elapsedMs >= 55, `answer waited for the lag (${res.elapsedMs.toFixed(0)} ms)`);
  for (const p of res.body.peers ?? []) t.ok(p.attempts > 1, `${p.name} retried (${p.attempts} attempts)`);
});

t.test('one of three peers never gets the token → Partialy; two of three → NotSynced', async (t) => {
  const token = newToken();
  replicas[1]!.give(token);
  replicas[2]!.give(token);
  const partial = await check(token);
  t.equal(partial.tokenStatus, 'Partialy');
  const missing = partial.body.peers?.find((p) => p.name === 'pod-3');
  t.same({ outcome: missing?.outcome, attempts: missing?.attempts, lastStatus: missing?.lastStatus }, { outcome: 'missing', attempts: MAX_RETRIES + 1, lastStatus: 401 });
  t.equal(replicas[3]!.requestsFor(token), MAX_RETRIES + 1, 'the peer saw exactly the probes reported');

  const token2 = newToken();
  replicas[1]!.give(token2);
  t.equal((await check(token2)).tokenStatus, 'NotSynced');
  t.equal((await check(newToken())).tokenStatus, 'NotSynced', 'no peer has it');
});

t.test('strict checks answer 403 unless Synced, with the same verdict header and body', async (t) => {
  const token = newToken();
  replicas[1]!.give(token);
  replicas[2]!.give(token);
  const strict = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token }, 'GET', '/v1/synced?strict=true');
  t.same([strict.status, strict.tokenStatus, strict.body.verdict], [403, 'Partialy', 'Partialy']);
  replicas[3]!.give(token);
  const synced = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token }, 'GET', '/v1/synced?strict=true');
  t.same([synced.status, synced.tokenStatus], [200, 'Synced']);
});

t.test('5xx is transient: retried, then error', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  replicas[1]!.behaviour = { kind: 'status', status: 503 };
  const res = await check(token);
  const p = res.body.peers?.find((x) => x.name === 'pod-1');
  t.same([p?.outcome, p?.attempts, p?.lastStatus], ['error', MAX_RETRIES + 1, 503]);
  t.equal(res.tokenStatus, 'Partialy');
});

t.test('a 5xx that recovers is not an error', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  replicas[2]!.behaviour = { kind: 'status', status: 502 };
  const answer = check(token);
  setTimeout(() => (replicas[2]!.behaviour = { kind: 'store' }), 20);
  const res = await answer;
  t.equal(res.tokenStatus, 'Synced');
});

t.test('403 is a misconfiguration: no retry, outcome error, warned', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  replicas[3]!.behaviour = { kind: 'status', status: 403 };
  const res = await check(token);
  const p = res.body.peers?.find((x) => x.name === 'pod-3');
  t.same([p?.outcome, p?.attempts, p?.lastStatus], ['error', 1, 403]);
  t.ok(
    sidecar.logs.some((l) => l.includes('"level":40') && l.includes('"status":403') && l.includes('"peer":"pod-3"')),
    'a warn line names the peer and status',
  );
});

t.test('a hanging peer → Timeout, answered at the deadline, in-flight probe cancelled', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  replicas[1]!.behaviour = { kind: 'hang' };
  const res = await check(token);
  t.equal(res.tokenStatus, 'Timeout');
  const hung = res.body.peers?.find((p) => p.name === 'pod-1');
  t.equal(hung?.outcome, 'timeout');
  // The per-probe timeout (150 ms) makes each hang a transient error; retries run until the deadline.
  t.ok((hung?.attempts ?? 0) >= 3, `each probe was cut at the probe timeout (${hung?.attempts} attempts in ${HARD_TIMEOUT_MS} ms)`);
  t.ok(res.elapsedMs >= HARD_TIMEOUT_MS - 5, `not before the deadline (${res.elapsedMs.toFixed(0)} ms)`);
  t.ok(res.elapsedMs <= HARD_TIMEOUT_MS + DEADLINE_MARGIN_MS, `not noticeably after it (${res.elapsedMs.toFixed(0)} ms)`);
});

t.test('connection reset, close mid-response and refused connections are errors', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  replicas[1]!.behaviour = { kind: 'reset' };
  replicas[2]!.behaviour = { kind: 'close-mid-response' };
  const res = await check(token);
  const byName = Object.fromEntries((res.body.peers ?? []).map((p) => [p.name, p]));
  t.same([byName['pod-1']?.outcome, byName['pod-1']?.attempts], ['error', MAX_RETRIES + 1]);
  t.ok(byName['pod-1']?.lastError, `reset has an error code (${byName['pod-1']?.lastError})`);
  t.same([byName['pod-2']?.outcome, byName['pod-2']?.lastStatus], ['error', 200], 'a truncated 200 is not trusted');
  t.equal(res.tokenStatus, 'NotSynced');

  const refused = await startSidecar({ SYNCER_PEERS: 'pod-0=127.0.1.10:18081,ghost=127.0.1.99:18081', SYNCER_RETRY_DELAY_MS: '1', SYNCER_MAX_RETRIES: '2' });
  t.teardown(() => refused.stop());
  const r2 = await check(token).then(() => sendCheck(refused.apiUrl, { 'X-Auth-Token': token }));
  t.same(r2.body.peers?.map((p) => [p.name, p.outcome, p.attempts, p.lastError]), [['ghost', 'error', 3, 'ECONNREFUSED']]);
  t.equal(r2.tokenStatus, 'NotSynced');
});

t.test('concurrent identical checks share one fan-out', async (t) => {
  const token = newToken();
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  for (const r of others()) {
    r.give(token);
    r.behaviour = { kind: 'gate', open: gate };
  }
  const replies = Promise.all(Array.from({ length: 25 }, () => check(token)));
  // Hold the peers' answers until all 25 checks are inside the sidecar, so they overlap for sure.
  // Read in-process (the ops listener serves a render up to 100 ms old): the peers hold their
  // answers meanwhile, and a slow look would let the probe timeout cut them.
  await waitFor(async () => /syncer_checks_in_flight 25\b/.test(await sidecar.app.telemetry.metrics()), '25 checks in flight');
  open();
  const answered = await replies;
  t.ok(answered.every((r) => r.tokenStatus === 'Synced'), 'all answered Synced');
  t.equal(answered.filter((r) => r.body.shared === false).length, 1, 'exactly one check led');
  for (const [i, r] of others().entries()) t.equal(r.requestsFor(token), 1, `pod-${i + 1} was probed once, not 25 times`);
  const otherOrigin = await check(token, 'pod-1');
  t.equal(otherOrigin.body.shared, false, 'a different origin is a different check');
});

t.test('origin excluded by name and by IP', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  t.same(Object.keys(outcomes((await check(token, 'pod-2')).body)), ['pod-0', 'pod-1', 'pod-3']);
  t.same(Object.keys(outcomes((await check(token, replicas[3]!.host)).body)), ['pod-0', 'pod-1', 'pod-2']);
  t.same([replicas[2]!.requestsFor(token), replicas[3]!.requestsFor(token)], [1, 1], 'each excluded origin was probed only by the other check');
  t.same(Object.keys(outcomes((await check(token, 'someone-else')).body)), ['pod-0', 'pod-1', 'pod-2', 'pod-3'], 'unknown origin: all peers');
});

t.test('bad requests', async (t) => {
  const missing = await sendCheck(sidecar.apiUrl, {});
  t.same([missing.status, missing.tokenStatus], [400, undefined]);
  t.match(missing.body.error, /required/);
  t.equal((await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'a b' })).status, 400);
  const big = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'x'.repeat(9000) });
  t.same([big.status, big.body.error], [400, 'X-Auth-Token is longer than 8192 bytes']);
  t.equal((await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'ok' }, 'POST')).status, 405);
  t.equal((await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'ok' }, 'GET', '/v1/other')).status, 404);
  t.equal((await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'ok' }, 'GET', '/v1/synced?x=1')).status, 200, 'query strings are ignored');
});

t.test('503 until discovery produced its first peer set, then ready', async (t) => {
  let publish: (() => void) | undefined;
  const waiting = await startSidecar({}, ({ store }) => ({ start: () => (publish = () => store.publish([])), stop: async () => {} }));
  t.teardown(() => waiting.stop());
  const early = await sendCheck(waiting.apiUrl, { 'X-Auth-Token': 'tok' });
  t.same([early.status, early.tokenStatus], [503, undefined]);
  t.match(early.body.error, /discovery/);
  t.equal((await fetch(`${waiting.opsUrl}/readyz`)).status, 503, 'not ready');
  t.equal((await fetch(`${waiting.opsUrl}/healthz`)).status, 200, 'but alive');
  publish?.();
  t.equal((await fetch(`${waiting.opsUrl}/readyz`)).status, 200, 'ready after the first set');
  const after = await sendCheck(waiting.apiUrl, { 'X-Auth-Token': 'tok' });
  t.same([after.status, after.tokenStatus, after.body.peers], [200, 'Synced', []], 'zero peers → Synced');
});

t.test('peers that leave have their connection pools closed', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  await check(token);
  t.ok(replicas[3]!.openConnections > 0, 'a keep-alive connection is held to pod-3');
  sidecar.app.store.publish(sidecar.app.store.current()!.peers.filter((p) => p.name !== 'pod-3'));
  await waitFor(() => replicas[3]!.openConnections === 0, 'the pool to pod-3 to close');
  t.equal(replicas[3]!.openConnections, 0, 'the pool to the departed peer is closed');
  const res = await check(token);
  t.same(Object.keys(outcomes(res.body)), ['pod-1', 'pod-2']);
  t.equal(replicas[3]!.requestsFor(token), 1, 'the departed peer is not probed any more');
});

t.test('metrics count verdicts and never carry the token; logs never carry it either', async (t) => {
  const metrics = await (await fetch(`${sidecar.opsUrl}/metrics`)).text();
  t.match(metrics, /syncer_checks_total\{verdict="Synced"\} \d+/);
  t.match(metrics, /syncer_checks_total\{verdict="Timeout"\} \d+/);
  t.match(metrics, /syncer_probes_total\{result="missing"\} \d+/);
  t.match(metrics, /syncer_checks_shared_total \d+/);
  t.match(metrics, /syncer_peers 3/);
  t.match(metrics, /syncer_discovery_state\{state="synced"\} 1/);
  t.notMatch(metrics, /SECRETMARK/);
  t.ok(sidecar.logs.some((l) => l.includes('"msg":"check"') && /"fp":"[0-9a-f]{12}"/.test(l)), 'check lines carry a fingerprint');
  t.ok(sidecar.logs.some((l) => l.includes('"msg":"check peers"')), 'per-peer detail at debug');
  t.equal(sidecar.logs.filter((l) => l.includes('SECRETMARK')).length, 0, 'no log line contains a token');
});
