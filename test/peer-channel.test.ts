// One peer's channel in-process against a simulated replica, with the sweep's clock injected:
// probes past connectionsPerPeer wait in our FIFO (in order, their timeout not started until
// they are sent), a waiting probe given up never reaches the peer, and closing the owner ends
// every probe as departed and closes the connections.
import t from 'tap';
import { CUT } from '../sidecar/probe/probe.js';
import { startProbing } from './support/probing.js';
import { waitFor } from './support/wait.js';

const NET = '127.0.61.';
const TIMEOUT_MS = 50;
const timedOut = { kind: 'error', status: null, errorCode: 'PROBE_TIMEOUT' };
const synced = { kind: 'synced', status: 200, errorCode: null };

t.test('past the cap, probes wait in order and each one\'s timeout starts when it is sent', async (t) => {
  const p = await startProbing(t, { host: `${NET}10`, connectionsPerPeer: 1, timeoutMs: TIMEOUT_MS });
  p.replica.behaviour = { kind: 'hang' };
  p.probe('first');
  p.probe('second');
  p.probe('third');
  await waitFor(() => p.replica.requestsFor('first') === 1, 'the first probe to reach the replica');
  p.now += 2 * TIMEOUT_MS;
  t.same(await p.resultOf('first'), timedOut);
  await waitFor(() => p.replica.requestsFor('second') === 1, 'the second probe to be sent in the freed slot');
  t.same([p.replica.requests, p.results.has('third')], [2, false], 'the third still waits, unsent and untimed');
  p.replica.behaviour = { kind: 'store' };
  p.replica.give('third');
  // The second times out (sent a timeout ago); the third, sent only now, has its whole timeout ahead.
  p.now += 2 * TIMEOUT_MS;
  t.same(await p.resultOf('second'), timedOut);
  t.same(await p.resultOf('third'), synced);
  t.equal(p.replica.maxInFlight, 1, 'never more than connectionsPerPeer at the replica');
});

t.test('a waiting probe cut by its check never reaches the peer; the one behind it goes instead', async (t) => {
  const p = await startProbing(t, { host: `${NET}11`, connectionsPerPeer: 1, timeoutMs: TIMEOUT_MS });
  let open = (): void => undefined;
  p.replica.behaviour = { kind: 'gate', open: new Promise<void>((resolve) => (open = resolve)) };
  p.replica.give('first');
  p.replica.give('third');
  p.probe('first');
  const second = p.probe('second');
  p.probe('third');
  await waitFor(() => p.replica.requestsFor('first') === 1, 'the first probe to reach the replica');
  second.cut(CUT.deadline);
  t.same(p.results.get('second'), [{ kind: 'aborted', status: null, errorCode: null }], 'told at once');
  p.replica.behaviour = { kind: 'store' };
  open();
  t.same(await p.resultOf('first'), synced);
  t.same(await p.resultOf('third'), synced);
  t.equal(p.replica.requestsFor('second'), 0, 'the cut probe was never sent');
  // The cut probe holds no timeout either: the sweep goes on timing out the probes sent after it.
  p.replica.behaviour = { kind: 'hang' };
  p.probe('fourth');
  await waitFor(() => p.replica.requestsFor('fourth') === 1, 'the fourth probe to reach the replica');
  p.now += 2 * TIMEOUT_MS;
  t.same(await p.resultOf('fourth'), timedOut);
  t.same(p.results.get('second')?.length, 1, 'the cut probe was told once');
});

t.test('closing the channels ends every probe, sent or waiting, as departed, and closes the connections', async (t) => {
  const p = await startProbing(t, { host: `${NET}12`, connectionsPerPeer: 1, timeoutMs: TIMEOUT_MS });
  p.replica.behaviour = { kind: 'hang' };
  p.probe('sent');
  p.probe('waiting');
  await waitFor(() => p.replica.requestsFor('sent') === 1, 'the first probe to reach the replica');
  await p.channels.close();
  const departed = { kind: 'departed', status: null, errorCode: null };
  t.same([p.results.get('sent'), p.results.get('waiting')], [[departed], [departed]]);
  await waitFor(() => p.replica.openConnections === 0, 'the connection to the replica to close');
  p.probe('late');
  t.same(p.results.get('late'), [departed], 'a probe through the departed channel ends at once');
  t.equal(p.replica.requests, 1);
});
