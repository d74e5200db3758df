// The Synced memo: a token every peer held a moment ago is answered at once, without probing,
// until the TTL passes or the peer set gains a peer. Real peers count the probes they get; the
// clock is injected, so expiry is tested without waiting (and once in real time).
import t from 'tap';
import { SyncedMemo } from '../sidecar/check/synced-memo.js';
import { checkKey } from '../sidecar/check/token-keys.js';
import type { Peer } from '../sidecar/model.js';
import { startReplicas, type ReplicaServer } from './support/replica-server.js';
import { peersEnv, sendCheck, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { waitFor } from './support/wait.js';

const TTL_MS = 30_000;
let seq = 0;
const newToken = (): string => `memo-${process.pid}-${++seq}-SECRETMARK`;

t.test('the memo itself: TTL, the oldest evicted first, re-insertion refreshes, clear', async (t) => {
  let now = 1_000;
  const memo = new SyncedMemo(100, 3, () => now);
  memo.remember('a');
  now += 10;
  memo.remember('b');
  memo.remember('c');
  t.ok(memo.has('a') && memo.has('b') && memo.has('c'));
  memo.remember('a'); // refreshed: now the newest
  memo.remember('d'); // over the bound: the oldest (b) goes
  t.same(['a', 'b', 'c', 'd'].map((k) => memo.has(k)), [true, false, true, true]);
  now += 95; // a (refreshed at 1010) expires at 1110; c at 1110; d at 1110
  t.equal(memo.has('c'), true, 'at 1105 c (until 1110) is still there');
  now += 5;
  t.equal(memo.has('c'), false, 'at 1110 it has expired');
  memo.remember('e'); // expired entries at the front are dropped on insertion
  t.equal(memo.size, 1, 'a and d expired and were dropped; e remains');
  memo.clear();
  t.equal(memo.size, 0);
  const off = new SyncedMemo(0, 10, () => now);
  off.remember('x');
  t.equal(off.has('x'), false, 'TTL 0: nothing is remembered');
});

t.test('keys are digests of origin and token, never the token', async (t) => {
  const token = 'abc.def-SECRETMARK';
  const key = checkKey('pod-1', token);
  t.equal(key.length, 32, 'a raw SHA-256: 32 characters');
  t.notOk(key.includes('SECRETMARK'));
  t.not(checkKey('pod-2', token), key, 'another origin is another check');
  t.equal(checkKey('pod-1', token), key, 'stable');
  t.not(checkKey('pod-1x', 'y'), checkKey('pod-1', 'xy'), 'no collision by concatenation');
});

interface Fixture {
  readonly replicas: ReplicaServer[];
  readonly sidecar: RunningSidecar;
  /** Added to real time on the sidecar's clock: probes and deadlines run on real time, expiry jumps. */
  readonly clock: { skewMs: number };
}

async function fixture(t: { teardown(fn: () => Promise<void>): void }, net: string, env: Record<string, string> = {}): Promise<Fixture> {
  const replicas = await startReplicas(4, { net, first: 10, port: 18110 });
  const clock = { skewMs: 0 };
  const sidecar = await startSidecar(
    { SYNCER_PEERS: peersEnv(replicas), SYNCER_SYNCED_TTL_MS: String(TTL_MS), SYNCER_HARD_TIMEOUT_MS: '600', SYNCER_PROBE_TIMEOUT_MS: '150', SYNCER_RETRY_DELAY_MS: '5', ...env },
    undefined,
    { now: () => performance.now() + clock.skewMs },
  );
  t.teardown(async () => {
    await sidecar.stop();
    await Promise.all(replicas.map((r) => r.close()));
  });
  return { replicas, sidecar, clock };
}

const probesFor = (f: Fixture, token: string): number => f.replicas.reduce((n, r) => n + r.requestsFor(token), 0);
const check = (f: Fixture, token: string, origin?: string) => sendCheck(f.sidecar.apiUrl, origin === undefined ? { 'X-Auth-Token': token } : { 'X-Auth-Token': token, 'X-Nginx-Origin': origin });

t.test('a repeat check within the TTL sends no probe and says cached; after it, it probes again', async (t) => {
  const f = await fixture(t, '127.0.10.');
  const token = newToken();
  for (const r of f.replicas) r.give(token);
  const first = await check(f, token);
  t.same([first.tokenStatus, first.body.cached, probesFor(f, token)], ['Synced', false, 3], 'the first check probes the 3 other replicas');
  const again = await check(f, token);
  t.same([again.status, again.tokenStatus, again.body.verdict, again.body.cached, again.body.shared, again.body.peers], [200, 'Synced', 'Synced', true, false, []]);
  t.equal(probesFor(f, token), 3, 'no probe for the repeat');
  const strict = await sendCheck(f.sidecar.apiUrl, { 'X-Auth-Token': token }, 'GET', '/v1/synced?strict=true');
  t.same([strict.status, strict.body.cached], [200, true], 'strict repeat: 200 too');
  f.clock.skewMs += TTL_MS - 1_000;
  t.equal((await check(f, token)).body.cached, true, 'still remembered just before the TTL');
  f.clock.skewMs += 1_001;
  const expired = await check(f, token);
  t.same([expired.body.cached, expired.tokenStatus, probesFor(f, token)], [false, 'Synced', 6], 'after the TTL it probes again');
  const metrics = await (await fetch(`${f.sidecar.opsUrl}/metrics`)).text();
  t.match(metrics, /^syncer_checks_cached_total 3$/m, 'cached answers are counted');
  t.notMatch(metrics, /SECRETMARK/);
  t.equal(f.sidecar.logs.filter((l) => l.includes('SECRETMARK')).length, 0, 'the token is in no log line');
});

t.test('a peer joining the set forgets every verdict: the next check probes, the new peer included', async (t) => {
  const f = await fixture(t, '127.0.11.');
  const token = newToken();
  for (const r of f.replicas) r.give(token);
  t.equal((await check(f, token)).body.cached, false);
  t.equal((await check(f, token)).body.cached, true);
  const store = f.sidecar.app.store;
  const before = store.current()!.peers;
  store.publish(before.filter((p) => p.name !== 'pod-3'));
  t.equal((await check(f, token)).body.cached, true, 'a peer leaving keeps the memo: the verdict covered more than is left');
  const extra = (await startReplicas(1, { net: '127.0.11.', first: 20, port: 18110 }))[0]!;
  t.teardown(() => extra.close());
  const joined: Peer = { name: 'pod-9', host: extra.host, port: extra.port };
  store.publish([...before, joined]);
  const after = await check(f, token);
  t.same([after.body.cached, after.tokenStatus], [false, 'Partialy'], 'probed again: the new replica lacks the token');
  t.equal(extra.requestsFor(token) > 0, true, 'the new peer was asked');
  extra.give(token);
  t.same([(await check(f, token)).tokenStatus, (await check(f, token)).body.cached], ['Synced', true], 'remembered again once Synced');
});

t.test('only Synced is remembered, per origin, and SYNCER_SYNCED_TTL_MS=0 turns it off', async (t) => {
  const f = await fixture(t, '127.0.12.');
  const token = newToken();
  f.replicas[1]!.give(token);
  f.replicas[2]!.give(token);
  t.equal((await check(f, token)).tokenStatus, 'Partialy');
  const again = await check(f, token);
  t.same([again.tokenStatus, again.body.cached], ['Partialy', false], 'a non-Synced verdict is never remembered');
  f.replicas[3]!.give(token);
  t.equal((await check(f, token)).tokenStatus, 'Synced');
  t.equal((await check(f, token, 'pod-1')).body.cached, false, 'another origin is another check');

  const off = await fixture(t, '127.0.13.', { SYNCER_SYNCED_TTL_MS: '0' });
  const token2 = newToken();
  for (const r of off.replicas) r.give(token2);
  await check(off, token2);
  const repeat = await check(off, token2);
  t.same([repeat.body.cached, probesFor(off, token2)], [false, 6], 'TTL 0: every check probes');
});

t.test('real time: a short TTL expires by itself', async (t) => {
  const replicas = await startReplicas(2, { net: '127.0.14.', first: 10, port: 18110 });
  const sidecar = await startSidecar({ SYNCER_PEERS: peersEnv(replicas), SYNCER_SYNCED_TTL_MS: '150' });
  t.teardown(async () => {
    await sidecar.stop();
    await Promise.all(replicas.map((r) => r.close()));
  });
  const token = newToken();
  for (const r of replicas) r.give(token);
  await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token });
  t.equal((await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token })).body.cached, true);
  await waitFor(async () => (await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token })).body.cached === false, 'the memo entry to expire', { timeoutMs: 5_000, intervalMs: 50 });
  t.equal(replicas[1]!.requestsFor(token), 2, 'probed twice: the first check and the one after expiry');
});
