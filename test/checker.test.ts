// The checker's bookkeeping, in-process: admission against maxInFlight, shared fan-outs and
// their count of waiting requests, requests that leave before their verdict, a request that
// must not join a fan-out begun before a peer joined, the memo forgetting a verdict whose
// fan-out began before a peer joined or got its answers before a peer's connection changed, and
// idle(). A check whose origin is the only peer fans out to nobody (Synced at once, no network);
// where a fan-out must stay in flight, real replicas answer it.
import t from 'tap';
import type { Admission, Waiting } from '../sidecar/check/checker.js';
import type { Peer } from '../sidecar/model.js';
import { checkerFixture } from './support/checker-fixture.js';
import { freePort } from './support/net.js';
import { ReplicaServer } from './support/replica-server.js';
import { waitFor } from './support/wait.js';

const SELF: Peer = { name: 'self', host: '127.0.0.1', port: 9 };

function running(t: { pass(message: string): void }, admission: Admission): Waiting {
  if (admission.kind !== 'running') throw new Error(`expected a running check, got ${admission.kind}`);
  t.pass(`running${admission.shared ? ', shared' : ''}`);
  return admission;
}

async function replica(t: { teardown(fn: () => Promise<void>): void }, host = '127.0.57.10'): Promise<ReplicaServer> {
  const r = await ReplicaServer.start({ host, port: await freePort(host) });
  t.teardown(() => r.close());
  return r;
}

t.test('an identical check joins the running fan-out even at maxInFlight; another is refused', async (t) => {
  const f = checkerFixture({ SYNCER_MAX_IN_FLIGHT: '2', SYNCER_SYNCED_TTL_MS: '0' });
  t.teardown(() => f.close());
  f.setPeers([SELF]);
  const first = running(t, f.checker.check('tok', 'self'));
  t.equal(first.shared, false);
  t.equal(f.checker.check('other', 'self').kind, 'running', 'a second fan-out fits under the bound of 2');
  t.equal(f.checker.waiting, 2);
  t.equal(f.checker.check('third', 'self').kind, 'overloaded', 'a third distinct check is refused');
  const joined = running(t, f.checker.check('tok', 'self'));
  t.equal(joined.shared, true, 'the same token and origin share the fan-out, over the bound');
  t.equal(joined.result, first.result, 'the very same result');
  t.equal(f.checker.waiting, 3);
  t.equal((await first.result).verdict, 'Synced');
  await f.checker.idle();
  t.equal(f.checker.waiting, 0, 'every request that waited, shared ones included, is counted out');
  t.equal(f.results.length, 2, 'two fan-outs for three requests');
  t.equal(f.checker.check('fourth', 'self').kind, 'running', 'room again');
});

t.test('a Synced verdict whose fan-out began before a peer joined is not remembered', async (t) => {
  const r = await replica(t);
  const f = checkerFixture();
  t.teardown(() => f.close());
  const joiner: Peer = { name: 'joiner', host: r.host, port: r.port };
  f.setPeers([SELF]);
  // Control: with no join in between, Synced is remembered.
  t.equal((await running(t, f.checker.check('kept', 'self')).result).verdict, 'Synced');
  t.equal(f.checker.check('kept', 'self').kind, 'cached');

  const before = running(t, f.checker.check('tok', 'self'));
  f.setPeers([SELF, joiner]); // while that fan-out (to nobody) has not landed yet
  t.equal((await before.result).verdict, 'Synced', 'Synced among the peers it asked');
  r.give('tok');
  const after = running(t, f.checker.check('tok', 'self'));
  t.equal(after.shared, false, 'a fresh fan-out, not the memo');
  const result = await after.result;
  t.same(result.peers.map((p) => [p.name, p.outcome]), [['joiner', 'synced']], 'and it asks the new peer');
  t.equal(f.checker.check('tok', 'self').kind, 'cached', 'that verdict is remembered');
  t.equal(f.checker.check('kept', 'self').kind, 'running', 'the join forgot the verdicts from before it');
});

t.test('idle() waits for the fan-outs in flight, and resolves at once when there are none', async (t) => {
  const r = await replica(t);
  r.give('tok');
  const f = checkerFixture();
  t.teardown(() => f.close());
  f.setPeers([SELF, { name: 'peer', host: r.host, port: r.port }]);
  await f.checker.idle();
  t.equal(f.results.length, 0, 'nothing ran: idle at once');
  running(t, f.checker.check('tok', 'self'));
  running(t, f.checker.check('tok', 'self'));
  t.equal(f.checker.waiting, 2);
  await f.checker.idle();
  t.equal(f.checker.waiting, 0, 'idle only once the fan-out landed');
  t.same(f.results.map((x) => x.verdict), ['Synced']);
  t.equal(r.requestsFor('tok'), 1, 'one probe for the two requests');
});

/** Fast settings for checks that must run to their end: a 600 ms deadline, 100 ms probe timeout. */
const FAST = { SYNCER_HARD_TIMEOUT_MS: '600', SYNCER_PROBE_TIMEOUT_MS: '100', SYNCER_RETRY_DELAY_MS: '5', SYNCER_SYNCED_TTL_MS: '0' };

t.test('a request joins only a fan-out begun with the peer set it sees: after a peer joined, it starts its own', async (t) => {
  const [early, late] = [await replica(t, '127.0.57.11'), await replica(t, '127.0.57.12')];
  const f = checkerFixture(FAST);
  t.teardown(() => f.close());
  const peerEarly: Peer = { name: 'early', host: early.host, port: early.port };
  f.setPeers([SELF, peerEarly]);
  early.give('tok', 200); // reaches the first peer 200 ms from now; the joiner never gets it
  const before = running(t, f.checker.check('tok', 'self'));
  f.setPeers([SELF, peerEarly, { name: 'joiner', host: late.host, port: late.port }]);
  const after = running(t, f.checker.check('tok', 'self'));
  t.equal(after.shared, false, 'the identical request does not join the fan-out begun before the join');
  t.not(after.result, before.result);
  const [b, a] = await Promise.all([before.result, after.result]);
  t.same([b.verdict, b.peers.map((p) => p.name)], ['Synced', ['early']], 'the first is Synced among the peers of its time');
  t.same(
    [a.verdict, a.peers.map((p) => [p.name, p.outcome])],
    [
      'NotSynced',
      [
        ['early', 'synced'],
        ['joiner', 'missing'],
      ],
    ],
    'the second asked the new peer too: not Synced',
  );
  const third = running(t, f.checker.check('tok', 'self'));
  t.equal(third.shared, false, 'nothing left to join once both landed');
  await third.result;
  t.equal(f.checker.waiting, 0);
});

t.test('a request that leaves stops counting at once; the fan-out goes on for the others; the last to leave ends it', async (t) => {
  const r = await replica(t, '127.0.57.13');
  r.behaviour = { kind: 'hang' };
  const f = checkerFixture({ ...FAST, SYNCER_HARD_TIMEOUT_MS: '60000', SYNCER_PROBE_TIMEOUT_MS: '60000', SYNCER_MAX_IN_FLIGHT: '2' });
  t.teardown(() => f.close());
  f.setPeers([SELF, { name: 'hanging', host: r.host, port: r.port }]);
  const first = running(t, f.checker.check('tok', 'self'));
  const second = running(t, f.checker.check('tok', 'self'));
  t.equal(second.shared, true);
  t.equal(f.checker.check('other', 'self').kind, 'overloaded', 'two requests wait: the bound is reached');
  first.leave();
  t.equal(f.checker.waiting, 1, 'the one that left no longer counts');
  first.leave();
  t.equal(f.checker.waiting, 1, 'leaving twice counts once');
  const other = running(t, f.checker.check('other', 'self'));
  t.equal(other.shared, false, 'its slot went to another check at once');
  await waitFor(() => r.inFlight === 2, 'both fan-outs to probe the peer');
  t.equal(f.results.length, 0, 'the shared fan-out goes on for the request still waiting');

  second.leave();
  const ended = await second.result;
  t.same([ended.verdict, ended.peers.map((p) => p.outcome), ended.probes.aborted], ['Timeout', ['timeout'], 1], 'nobody waits: it ends now, its probe cut');
  await waitFor(() => r.inFlight === 1, 'the peer to see that probe abandoned');
  t.equal(f.checker.waiting, 1);
  const again = running(t, f.checker.check('tok', 'self'));
  t.equal(again.shared, false, 'an identical request after that starts afresh, not on the ended fan-out');
  again.leave();
  other.leave();
  await f.checker.idle();
  t.equal(f.checker.waiting, 0);
  t.equal(f.results.length, 3, 'every fan-out ended, and was reported once');
  other.leave();
  t.equal(f.checker.waiting, 0, 'leaving after the verdict changes nothing');
});

t.test('a new connection to a peer forgets the memo; verdicts whose answers came after it are remembered', async (t) => {
  const r = await replica(t, '127.0.57.14');
  r.give('kept');
  r.give('a');
  r.give('b');
  const f = checkerFixture({ SYNCER_PROBE_CONNECTIONS: '2' });
  t.teardown(() => f.close());
  f.setPeers([SELF, { name: 'peer', host: r.host, port: r.port }]);
  t.equal((await running(t, f.checker.check('kept', 'self')).result).verdict, 'Synced');
  t.equal(f.checker.check('kept', 'self').kind, 'cached', 'remembered: its answer came over the connection it opened');
  t.equal(r.connectionsAccepted, 1);
  // Two checks at once against a slow peer: the pool opens its second connection.
  r.behaviour = { kind: 'delay', ms: 50 };
  await Promise.all([running(t, f.checker.check('a', 'self')).result, running(t, f.checker.check('b', 'self')).result]);
  t.equal(r.connectionsAccepted, 2, 'a second connection was opened');
  t.equal(f.checker.check('kept', 'self').kind, 'running', 'forgotten: the peer may have restarted while we were not connected');
});
