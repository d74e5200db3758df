// One probe's result, in-process against a simulated replica: the status classified (200, 401,
// 5xx — 500 included — and the rest), the body read up to exactly 4 KiB, and a probe cut from
// our side settled once, with the result its reason calls for.
import t from 'tap';
import { CUT } from '../sidecar/probe/probe.js';
import { startProbing } from './support/probing.js';
import { connectionsOf } from './support/tcp-sockets.js';
import { waitFor } from './support/wait.js';

const NET = '127.0.62.';

t.test('the status decides: 200 synced, 401 missing, 500 and every 5xx error, anything else unexpected', async (t) => {
  const p = await startProbing(t, { host: `${NET}10`, connectionsPerPeer: 1, timeoutMs: 10_000 });
  const expected: Record<number, string> = { 200: 'synced', 401: 'missing', 499: 'unexpected', 500: 'error', 501: 'error', 503: 'error', 599: 'error', 403: 'unexpected', 404: 'unexpected', 204: 'unexpected' };
  const seen: Record<number, string> = {};
  for (const status of Object.keys(expected).map(Number)) {
    p.replica.behaviour = { kind: 'status', status };
    p.probe(`status-${status}`);
    const result = await p.resultOf(`status-${status}`);
    t.same([result.status, result.errorCode], [status, null]);
    seen[status] = result.kind;
  }
  t.same(seen, expected);
});

t.test('the body cap is exactly 4 KiB: 4,096 bytes are read and the connection kept; one byte more drops it', async (t) => {
  const p = await startProbing(t, { host: `${NET}12`, connectionsPerPeer: 1, timeoutMs: 10_000 });
  const ports = (): number[] => connectionsOf(process.pid, p.channel.peer.port).map((c) => c.localPort);
  const probeWithBody = async (name: string, bytes: number): Promise<void> => {
    p.replica.behaviour = { kind: 'sized-body', bytes };
    p.probe(name);
    t.same(await p.resultOf(name), { kind: 'synced', status: 200, errorCode: null }, `${bytes} bytes: the status decides`);
  };
  await probeWithBody('at-cap', 4096);
  const [carrying] = ports();
  await probeWithBody('at-cap-again', 4096);
  t.same([p.replica.connectionsAccepted, ports()], [1, [carrying]], 'a 4,096-byte body is read to its end: its connection is reused');
  await probeWithBody('over-cap', 4097);
  await waitFor(() => !ports().includes(carrying!), 'the connection of the 4,097-byte answer to be dropped');
  t.pass('one byte over the cap: the body is not read, its connection is dropped');
});

t.test('a probe cut from our side says why, at once, and is told only once', async (t) => {
  const p = await startProbing(t, { host: `${NET}11`, connectionsPerPeer: 4, timeoutMs: 10_000 });
  p.replica.behaviour = { kind: 'hang' };
  const cuts = { deadline: p.probe('deadline'), departed: p.probe('departed'), timeout: p.probe('timeout') };
  await waitFor(() => p.replica.requests === 3, 'the three probes to reach the replica');
  // The connections carrying them, by local port (undici may open a fresh idle one afterwards).
  const carrying = new Set(connectionsOf(process.pid, p.channel.peer.port).map((c) => c.localPort));
  t.equal(carrying.size, 3, 'one connection per probe');
  cuts.deadline.cut(CUT.deadline);
  cuts.departed.cut(CUT.departed);
  cuts.timeout.cut(CUT.timeout);
  t.same(
    ['deadline', 'departed', 'timeout'].map((name) => p.results.get(name)),
    [
      [{ kind: 'aborted', status: null, errorCode: null }],
      [{ kind: 'departed', status: null, errorCode: null }],
      [{ kind: 'error', status: null, errorCode: 'PROBE_TIMEOUT' }],
    ],
  );
  await waitFor(() => connectionsOf(process.pid, p.channel.peer.port).every((c) => !carrying.has(c.localPort)), 'the cut probes\' connections to be dropped');
  // An answered probe cut later (its check's deadline cuts every probe) keeps its answer.
  p.replica.behaviour = { kind: 'store' };
  p.replica.give('answered');
  const answered = p.probe('answered');
  t.same(await p.resultOf('answered'), { kind: 'synced', status: 200, errorCode: null });
  answered.cut(CUT.deadline);
  answered.cut(CUT.departed);
  for (const probe of Object.values(cuts)) probe.cut(CUT.timeout);
  t.same(
    ['answered', 'deadline', 'departed', 'timeout'].map((name) => p.results.get(name)?.length),
    [1, 1, 1, 1],
  );
});

t.test('a probe cut while its connection opens is never sent, and the connection serves the next probe', async (t) => {
  const p = await startProbing(t, { host: `${NET}12`, connectionsPerPeer: 1, timeoutMs: 10_000 });
  p.replica.give('next');
  // Cut in the same turn it is dispatched: undici is still connecting when the check gives it up.
  p.probe('early').cut(CUT.deadline);
  t.same(p.results.get('early'), [{ kind: 'aborted', status: null, errorCode: null }]);
  // With one connection allowed, the next probe waits until undici is done with the cut one.
  p.probe('next');
  t.same(await p.resultOf('next'), { kind: 'synced', status: 200, errorCode: null });
  t.same(
    { accepted: p.replica.connectionsAccepted, requests: p.replica.requests, early: p.results.get('early')?.length },
    { accepted: 1, requests: 1, early: 1 },
    'one connection, kept for the next probe; the cut probe was never written to it',
  );
});
