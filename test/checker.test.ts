// The checker's bookkeeping, in-process: admission against maxInFlight, shared fan-outs and
// their count of waiting requests, the memo forgetting a verdict whose fan-out began before a
// peer joined, and idle(). A check whose origin is the only peer fans out to nobody (Synced at
// once, no network); where a fan-out must stay in flight, one real replica answers it.
import t from 'tap';
import type { Admission } from '../sidecar/check/checker.js';
import type { FanOutResult, Peer } from '../sidecar/model.js';
import { checkerFixture } from './support/checker-fixture.js';
import { freePort } from './support/net.js';
import { ReplicaServer } from './support/replica-server.js';

const SELF: Peer = { name: 'self', host: '127.0.0.1', port: 9 };

function running(t: { pass(message: string): void }, admission: Admission): { result: Promise<FanOutResult>; shared: boolean } {
  if (admission.kind !== 'running') throw new Error(`expected a running check, got ${admission.kind}`);
  t.pass(`running${admission.shared ? ', shared' : ''}`);
  return admission;
}

async function replica(t: { teardown(fn: () => Promise<void>): void }): Promise<ReplicaServer> {
  const host = '127.0.57.10';
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
