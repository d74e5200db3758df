// The check against real HTTP peers on distinct loopback addresses (same port, like pods).
import t from 'tap';
import { Agent, request } from 'undici';
import { latencyOf } from './bench/measure.js';
import { MAX_ORIGIN_LENGTH } from '../sidecar/http/check-request.js';
import { http } from './support/net.js';
import { startReplicas, type ReplicaServer } from './support/replica-server.js';
import { peersEnv, sendCheck, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { boundOf, withLoopDelay } from './support/timing-floor.js';
import { waitFor } from './support/wait.js';

// Far above the retry schedule below (5 retries within ~155 ms): the retry cap, not the window,
// ends a peer's retries, however late a loaded machine runs them.
const HARD_TIMEOUT_MS = 3000;
const MAX_RETRIES = 5;
/** Past the deadline, on top of the floors measured in the same run (timing-floor.ts). */
const DEADLINE_MARGIN_MS = 150;
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
    // Doubling delays: probes at 0, 5, 10, 20, 40 and 80 ms (a token that lands after the first is seen).
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
  const pending = check(token);
  // The token lands once every peer has answered 401 to its first probe.
  await waitFor(() => others().every((r) => r.requestsFor(token) > 0), 'the first probes', { intervalMs: 1 });
  for (const r of others()) r.give(token);
  const res = await pending;
  t.equal(res.tokenStatus, 'Synced');
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
  // The default retry cap (30): only the deadline ends the retries of a peer that never answers.
  const hard = 600;
  const s = await startSidecar({ SYNCER_PEERS: peersEnv(replicas), SYNCER_HARD_TIMEOUT_MS: String(hard), SYNCER_PROBE_TIMEOUT_MS: '150', SYNCER_SYNCED_TTL_MS: '0' });
  t.teardown(() => s.stop());
  const token = newToken();
  for (const r of replicas) r.give(token);
  const healthy = await sendCheck(s.apiUrl, { 'X-Auth-Token': token }); // the hop floor: the same check with every peer answering at once
  t.equal(healthy.tokenStatus, 'Synced');
  replicas[1]!.behaviour = { kind: 'hang' };
  const { result: res, lateMs } = await withLoopDelay(() => sendCheck(s.apiUrl, { 'X-Auth-Token': token }));
  t.equal(res.tokenStatus, 'Timeout');
  const hung = res.body.peers?.find((p) => p.name === 'pod-1');
  t.equal(hung?.outcome, 'timeout');
  // The per-probe timeout (150 ms) cuts each hanging probe; retries run until the deadline.
  t.ok((hung?.attempts ?? 0) >= 3, `each probe was cut at the probe timeout (${hung?.attempts} attempts in ${hard} ms)`);
  t.ok(res.elapsedMs >= hard - 5, `not before the deadline (${res.elapsedMs.toFixed(0)} ms)`);
  const bound = boundOf(hard, DEADLINE_MARGIN_MS, { lateMs, hopMs: healthy.elapsedMs });
  t.ok(res.elapsedMs <= bound.ms, `not noticeably after it (${res.elapsedMs.toFixed(0)} ms; bound ${bound.why})`);
});

t.test('the deadline cuts a probe still in flight: the peer sees its request abandoned', async (t) => {
  // A probe timeout far beyond the deadline: only the deadline can end the probe to pod-1.
  const cutter = await startSidecar({ SYNCER_PEERS: peersEnv(replicas), SYNCER_HARD_TIMEOUT_MS: '600', SYNCER_PROBE_TIMEOUT_MS: '60000', SYNCER_SYNCED_TTL_MS: '0' });
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  t.teardown(async () => {
    open();
    await cutter.stop();
  });
  const token = newToken();
  for (const r of replicas) r.give(token);
  await waitFor(() => replicas[1]!.inFlight === 0, 'no earlier probe left at pod-1');
  replicas[1]!.behaviour = { kind: 'gate', open: gate }; // holds the request until the test ends
  const res = await sendCheck(cutter.apiUrl, { 'X-Auth-Token': token });
  const held = res.body.peers?.find((p) => p.name === 'pod-1');
  t.same([res.tokenStatus, held?.outcome, held?.attempts], ['Timeout', 'timeout', 1], 'one probe, unanswered at the deadline');
  // The gate is still shut: the request can only end because the sidecar dropped it.
  await waitFor(() => replicas[1]!.inFlight === 0, 'pod-1 to see its request abandoned (socket closed)', { timeoutMs: 10_000 });
  t.pass('pod-1 saw the probe abandoned while it was still holding its answer');
  t.match(await cutter.app.telemetry.metrics(), /syncer_probes_total\{result="aborted"\} 1\b/, 'counted as aborted');
});

/**
 * The process stalls (a starved or busy event loop) right after `pod` writes its answer, until
 * `untilMs`, in the check phase: the next turn then finds that answer in its socket and the timer
 * that ends the wait due together, as a loaded machine makes them.
 */
function stallAfterAnswer(open: () => void, untilMs: number): Promise<void> {
  return new Promise((resolve) => {
    setImmediate(open);
    setImmediate(() => {
      while (performance.now() < untilMs); // the stall itself is the fault injected, not a wait
      resolve();
    });
  });
}

/**
 * A sidecar with these settings, and a check of a token every peer holds whose answer from pod-1
 * reaches the sidecar's socket just before the process stalls until `stallMs` after that probe
 * arrived: the check's reply.
 */
async function checkThroughStall(t: { teardown(fn: () => Promise<void>): void }, env: Record<string, string>, stallMs: number) {
  const s = await startSidecar({ SYNCER_PEERS: peersEnv(replicas), SYNCER_SYNCED_TTL_MS: '0', ...env });
  t.teardown(() => s.stop());
  const token = newToken();
  for (const r of replicas) r.give(token);
  await waitFor(() => replicas[1]!.inFlight === 0, 'no earlier probe left at pod-1');
  let open!: () => void;
  replicas[1]!.behaviour = { kind: 'gate', open: new Promise<void>((resolve) => (open = resolve)) };
  const pending = sendCheck(s.apiUrl, { 'X-Auth-Token': token });
  await waitFor(() => replicas[1]!.requestsFor(token) === 1, 'the probe to reach pod-1');
  await stallAfterAnswer(open, performance.now() + stallMs);
  return pending;
}

t.test('an answer that reached the sidecar by the deadline counts, however late its event loop ran', async (t) => {
  // The check began before its probe reached pod-1: its 300 ms deadline is due before the stall ends.
  const r = await checkThroughStall(t, { SYNCER_HARD_TIMEOUT_MS: '300', SYNCER_PROBE_TIMEOUT_MS: '60000' }, 400);
  t.same([r.tokenStatus, outcomes(r.body)], ['Synced', { 'pod-1': 'synced', 'pod-2': 'synced', 'pod-3': 'synced' }], 'the 200 in the socket is read before the deadline ends the check');
});

t.test('a probe answer that arrived in time is not a probe timeout, however late the event loop ran', async (t) => {
  const r = await checkThroughStall(t, { SYNCER_HARD_TIMEOUT_MS: '5000', SYNCER_PROBE_TIMEOUT_MS: '200' }, 300);
  t.same(r.body.peers?.find((p) => p.name === 'pod-1'), { name: 'pod-1', outcome: 'synced', attempts: 1, lastStatus: 200, lastError: null }, 'answered on its first probe, not cut by the probe timeout');
});

t.test('a check whose peers answer at once is answered at once, not at the deadline', async (t) => {
  // A deadline far above any answer: a check that waited for it would stand out by orders of magnitude.
  const prompt = await startSidecar({ SYNCER_PEERS: peersEnv(replicas), SYNCER_HARD_TIMEOUT_MS: '10000', SYNCER_SYNCED_TTL_MS: '0' });
  // Keep-alive like the sidecar's own pools; closed after, so no connection outlives the test.
  const direct = new Agent();
  t.teardown(() => Promise.all([prompt.stop(), direct.close()]));
  const token = newToken();
  for (const r of replicas) r.give(token);
  const probeAll = () =>
    Promise.all(
      others().map(async (r) => {
        const res = await request(`http://${r.host}:${r.port}/apigw-syncer/probe`, { dispatcher: direct, headers: { authorization: `Bearer ${token}` } });
        await res.body.text();
        return res.statusCode;
      }),
    );
  // Interleaved, so load on the machine weighs on both alike: the floor is probing the same peers directly.
  const probed: number[] = [];
  const checks: number[] = [];
  for (let i = 0; i < 15; i++) {
    let started = performance.now();
    t.same(await probeAll(), [200, 200, 200]);
    probed.push(performance.now() - started);
    started = performance.now();
    const res = await sendCheck(prompt.apiUrl, { 'X-Auth-Token': token });
    checks.push(performance.now() - started);
    t.equal(res.tokenStatus, 'Synced');
  }
  const floor = latencyOf(probed).p50;
  const took = latencyOf(checks).p50;
  // The check adds one loopback hop and its own work to the direct probes; 50× leaves room for a
  // loaded machine and still sits far below the 10 s deadline.
  t.ok(took <= 50 * floor, `median check ${took.toFixed(2)} ms vs median direct probe of the same peers ${floor.toFixed(2)} ms`);
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

t.test('concurrent checks of one token from different origins do not share: each probes its own peers', async (t) => {
  const token = newToken();
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  // Only pod-3 lacks the token: a check from pod-3 excludes it (Synced), one from pod-0 asks it.
  for (const r of replicas.slice(0, 3)) r.give(token);
  for (const r of replicas) r.behaviour = { kind: 'gate', open: gate };
  const fromPod3 = check(token, 'pod-3');
  const fromPod0 = check(token, 'pod-0');
  // Both inside the sidecar before any peer answers, so a key without the origin would join them.
  await waitFor(async () => /syncer_checks_in_flight 2\b/.test(await sidecar.app.telemetry.metrics()), 'both checks in flight');
  open();
  const [a, b] = await Promise.all([fromPod3, fromPod0]);
  t.same([a.tokenStatus, a.body.shared, Object.keys(outcomes(a.body))], ['Synced', false, ['pod-0', 'pod-1', 'pod-2']], 'from pod-3: pod-3 not asked, Synced');
  t.same([b.tokenStatus, b.body.shared, outcomes(b.body)['pod-3']], ['Partialy', false, 'missing'], 'from pod-0: pod-3 asked, Partialy');
  t.ok(replicas[0]!.requestsFor(token) > 0 && replicas[3]!.requestsFor(token) > 0, 'pod-0 and pod-3 were each probed (by the other origin’s check)');
});

t.test('origin excluded by name and by IP', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  t.same(Object.keys(outcomes((await check(token, 'pod-2')).body)), ['pod-0', 'pod-1', 'pod-3']);
  t.same(Object.keys(outcomes((await check(token, replicas[3]!.host)).body)), ['pod-0', 'pod-1', 'pod-2']);
  t.same([replicas[2]!.requestsFor(token), replicas[3]!.requestsFor(token)], [1, 1], 'each excluded origin was probed only by the other check');
  t.same(Object.keys(outcomes((await check(token, 'someone-else')).body)), ['pod-0', 'pod-1', 'pod-2', 'pod-3'], 'unknown origin: all peers');
});

t.test('HEAD is answered like GET (status, X-Token-Status) without a body', async (t) => {
  const all = newToken();
  const most = newToken();
  const one = newToken();
  for (const r of replicas) r.give(all);
  replicas[1]!.give(most);
  replicas[2]!.give(most);
  replicas[1]!.give(one);
  for (const [token, path] of [[all, '/v1/synced'], [most, '/v1/synced'], [one, '/v1/synced'], [most, '/v1/synced?strict=true']] as const) {
    const url = `${sidecar.apiUrl}${path}`;
    const get = await http(url, { headers: { 'X-Auth-Token': token } });
    const head = await http(url, { method: 'HEAD', headers: { 'X-Auth-Token': token } });
    t.same([head.status, head.headers['x-token-status'], head.body], [get.status, get.headers['x-token-status'], ''], `${path} ${JSON.parse(get.body).verdict}: HEAD ${head.status}`);
  }
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
  t.equal((await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'ok', 'X-Nginx-Origin': 'o'.repeat(MAX_ORIGIN_LENGTH) })).status, 200, 'an origin at the length limit is accepted');
  const long = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'ok', 'X-Nginx-Origin': 'o'.repeat(MAX_ORIGIN_LENGTH + 1) });
  t.same([long.status, long.tokenStatus, long.body.error], [400, undefined, 'X-Nginx-Origin must be a pod name or IP'], 'one past it is a 400');
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
  waiting.app.store.reportFailure('list', 'the API server went away');
  const stale = await http(`${waiting.opsUrl}/readyz`);
  t.same([stale.status, (JSON.parse(stale.body) as { discovery?: string }).discovery], [200, 'stale'], 'still ready while discovery is stale: the last set keeps serving');
  t.equal((await sendCheck(waiting.apiUrl, { 'X-Auth-Token': 'tok' })).status, 200, 'and checks are answered from it');
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
  t.match(metrics, /syncer_checks_total\{verdict="Partialy"\} \d+/);
  t.match(metrics, /syncer_probes_total\{result="missing"\} \d+/);
  t.match(metrics, /syncer_checks_shared_total \d+/);
  t.match(metrics, /syncer_peers 3/);
  t.match(metrics, /syncer_discovery_state\{state="synced"\} 1/);
  t.notMatch(metrics, /SECRETMARK/);
  t.ok(sidecar.logs.some((l) => l.includes('"msg":"check"') && /"fp":"[0-9a-f]{12}"/.test(l)), 'check lines carry a fingerprint');
  const fingerprintOf = async (token: string): Promise<unknown> => {
    const { checkId } = (await check(token)).body;
    const line = sidecar.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'check' && l['checkId'] === checkId);
    return line?.['fp'];
  };
  const [a1, a2, b] = [await fingerprintOf('fp-a-SECRETMARK'), await fingerprintOf('fp-a-SECRETMARK'), await fingerprintOf('fp-b-SECRETMARK')];
  t.match(a1, /^[0-9a-f]{12}$/);
  t.equal(a2, a1, 'the same token has the same fingerprint in every check');
  t.not(b, a1, 'another token has another');
  t.ok(sidecar.logs.some((l) => l.includes('"msg":"check peers"')), 'per-peer detail at debug');
  t.equal(sidecar.logs.filter((l) => l.includes('SECRETMARK')).length, 0, 'no log line contains a token');
});
