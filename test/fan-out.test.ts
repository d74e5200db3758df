// One fan-out's bookkeeping at the moments real peers cannot be made to hit on cue: a peer that
// leaves while its retry waits, the deadline during a retry wait or with a probe in flight, a
// probe settled inside probe(), and an exception in the check's own steps. The peers here are
// scripted channels: real PeerChannel and Probe objects whose answers the test gives through
// undici's handler callbacks (onHeaders, onComplete). check-integration.test.ts runs the same
// code against real peers.
import t from 'tap';
import type { Dispatcher } from 'undici';
import { fanOut, type FanOutSettings } from '../sidecar/check/fan-out.js';
import type { Peer } from '../sidecar/model.js';
import { PeerChannel } from '../sidecar/probe/peer-channel.js';
import { CUT, Probe, type ProbeListener } from '../sidecar/probe/probe.js';
import { ProbeTimeouts } from '../sidecar/probe/probe-timeouts.js';

const now = (): number => performance.now();
const deps = { now, random: () => 0.5 };
const timeouts = new ProbeTimeouts(60_000, now);
t.teardown(() => timeouts.close());

/** What a scripted peer does with its n-th probe (1-based). */
type Script = (probe: Probe, n: number, channel: ScriptedChannel) => void;

class ScriptedChannel extends PeerChannel {
  readonly sent: Probe[] = [];
  leaving = false;

  constructor(
    peer: Peer,
    private readonly script: Script,
  ) {
    super(peer, new Error('scripted: no pool'), 1, '/probe', timeouts);
  }

  override get departed(): boolean {
    return this.leaving;
  }

  override probe(headers: string[], listener: ProbeListener): Probe {
    const probe = new Probe(headers, listener, this);
    this.sent.push(probe);
    // As the real channel does: a probe of a peer that left is cut at once.
    if (this.leaving) probe.cut(CUT.departed);
    else this.script(probe, this.sent.length, this);
    return probe;
  }
}

const peer = (name: string): Peer => ({ name, host: '127.0.0.1', port: 9 });
const channel = (name: string, script: Script) => new ScriptedChannel(peer(name), script);

/** What undici hands the handler; a scripted answer never aborts through it. */
const controller: Dispatcher.DispatchController = { aborted: false, paused: false, reason: null, abort: () => undefined, pause: () => undefined, resume: () => undefined };

/** The peer's answer, delivered later as undici delivers it. */
function answer(probe: Probe, status: number, then?: () => void): void {
  setImmediate(() => {
    probe.onResponseStart(controller, status);
    probe.onResponseEnd();
    then?.();
  });
}
const never: Script = () => undefined;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Retries 10 ms apart, for at most `windowMs` into the check. */
function settings(hardTimeoutMs: number, delayMs = 10, windowMs = 60_000): FanOutSettings {
  return { hardTimeoutMs, retry: { delayMs, backoff: 1, maxDelayMs: delayMs, jitter: 0, maxRetries: 30 }, retryWindowMs: windowMs };
}
const HEADERS = ['authorization', 'Bearer tok'];

t.test('a peer that leaves while its retry waits is departed, without another probe', async (t) => {
  const leaver = channel('leaver', (probe, _n, c) => answer(probe, 401, () => (c.leaving = true)));
  const stayer = channel('stayer', (probe) => answer(probe, 200));
  const result = await fanOut([leaver, stayer], HEADERS, settings(60_000), deps);
  t.equal(result.verdict, 'Synced', 'a departed peer does not count');
  t.same(result.peers, [
    { name: 'leaver', outcome: 'departed', attempts: 1, lastStatus: 401, lastError: null },
    { name: 'stayer', outcome: 'synced', attempts: 1, lastStatus: 200, lastError: null },
  ]);
  t.equal(leaver.sent.length, 1, 'no probe after it left');
  t.match(result.probes, { synced: 1, missing: 1, departed: 0, aborted: 0 });
});

t.test('the deadline during a retry wait: timeout, and no probe counted as cut', async (t) => {
  const waiting = channel('waiting', (probe) => answer(probe, 401));
  const result = await fanOut([waiting], HEADERS, settings(40, 10_000), deps);
  t.equal(result.verdict, 'Timeout');
  t.same(result.peers, [{ name: 'waiting', outcome: 'timeout', attempts: 1, lastStatus: 401, lastError: null }]);
  t.same(result.probes, { synced: 0, missing: 1, error: 0, unexpected: 0, departed: 0, aborted: 0 });
  t.equal(waiting.sent.length, 1);
});

t.test('the deadline with a probe in flight: counted aborted once, and cut after the answer', async (t) => {
  const hanging = channel('hanging', never);
  const result = await fanOut([hanging], HEADERS, settings(20), deps);
  t.same(result.peers, [{ name: 'hanging', outcome: 'timeout', attempts: 1, lastStatus: null, lastError: null }]);
  t.equal(result.probes.aborted, 1);
  const probe = hanging.sent[0]!;
  t.equal(probe.isSettled, false, 'the answer goes out first');
  await nextTurn();
  t.equal(probe.isSettled, true, 'then the probe is cut');
  t.same(result.probes, { synced: 0, missing: 0, error: 0, unexpected: 0, departed: 0, aborted: 1 }, 'and not counted again when its cut settles it');
});

t.test('a probe settled inside probe() is not in flight: the deadline does not count it', async (t) => {
  // A refused pool answers this way (peer-channel.ts dispatch): synchronously, a transient error.
  const refused = channel('refused', (probe, n) => {
    if (n === 1) probe.fail(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
  });
  const result = await fanOut([refused], HEADERS, settings(40, 10_000), deps);
  t.same(result.peers, [{ name: 'refused', outcome: 'timeout', attempts: 1, lastStatus: null, lastError: 'ECONNREFUSED' }]);
  t.same(result.probes, { synced: 0, missing: 0, error: 1, unexpected: 0, departed: 0, aborted: 0 });
});

t.test('an exception in a check\'s own step rejects that check and stops its other peers', async (t) => {
  const planted = new Error('planted');
  const throwsAtOnce = channel('a', () => {
    throw planted;
  });
  const bystander = channel('b', never);
  await t.rejects(fanOut([bystander, throwsAtOnce], HEADERS, settings(60_000), deps), planted, 'thrown by the first probe');
  await nextTurn();
  t.equal(bystander.sent[0]?.isSettled, true, 'the other peer\'s probe is cut');

  const throwsOnRetry = channel('c', (probe, n) => {
    if (n === 1) answer(probe, 401);
    else throw planted;
  });
  await t.rejects(fanOut([throwsOnRetry], HEADERS, settings(60_000), deps), planted, 'thrown by a retry');
  t.equal(throwsOnRetry.sent.length, 2);

  // The deadline's own step fails: reading the peer's name for the report throws.
  const unnamed = new ScriptedChannel(
    {
      get name(): string {
        throw planted;
      },
      host: '127.0.0.1',
      port: 9,
    },
    never,
  );
  await t.rejects(fanOut([unnamed], HEADERS, settings(20), deps), planted, 'thrown while building the result at the deadline');
  await nextTurn();
  t.equal(unnamed.sent[0]?.isSettled, true, 'its probe is cut');
});

t.test('only an unexpected answer reports its peer as misconfigured; a peer that answered and then left keeps its answer', async (t) => {
  // "held" answers 200 and leaves; "late" answers 401 twice, then 200, after "held" has left.
  const held = channel('held', (probe, _n, c) => answer(probe, 200, () => (c.leaving = true)));
  const late = channel('late', (probe, n) => answer(probe, n < 3 ? 401 : 200));
  const wrong = channel('wrong', (probe) => answer(probe, 404));
  const result = await fanOut([held, late, wrong], HEADERS, settings(60_000), deps);
  t.same(
    result.peers.map((p) => [p.name, p.outcome, p.attempts]),
    [
      ['held', 'synced', 1],
      ['late', 'synced', 3],
      ['wrong', 'error', 1],
    ],
    'the peer that left after its 200 is still counted synced: its answer was given while it was a peer',
  );
  t.same(
    result.misconfigured.map((m) => [m.peer.name, m.status]),
    [['wrong', 404]],
    'the 404 alone is a misconfiguration; 200s and 401s are not',
  );
});
