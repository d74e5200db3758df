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
  // A clock that stands still: the stayer's 200 comes 0 ms into the check.
  const result = await fanOut([leaver, stayer], HEADERS, settings(60_000), { ...deps, now: () => 7 }).result;
  t.equal(result.verdict, 'Synced', 'a departed peer does not count');
  t.same(result.peers, [
    { name: 'leaver', outcome: 'departed', attempts: 1, lastStatus: 401, lastError: null, syncedAtMs: null },
    { name: 'stayer', outcome: 'synced', attempts: 1, lastStatus: 200, lastError: null, syncedAtMs: 0 },
  ]);
  t.equal(leaver.sent.length, 1, 'no probe after it left');
  t.match(result.probes, { synced: 1, missing: 1, departed: 0, aborted: 0 });
});

t.test("syncedAtMs: from the fan-out's start to the peer's first 200, null for every other outcome", async (t) => {
  let clock = 1_000;
  const late = channel('late', (probe, n) => {
    if (n < 3) return answer(probe, 401);
    clock = 1_042; // the 200 arrives 42 ms into the check
    answer(probe, 200, () => (clock = 1_500));
  });
  const silent = channel('silent', never);
  const result = await fanOut([late, silent], HEADERS, settings(200, 5), { ...deps, now: () => clock }).result;
  t.match(result.peers, [
    { name: 'late', outcome: 'synced', attempts: 3, syncedAtMs: 42 },
    { name: 'silent', outcome: 'timeout', syncedAtMs: null },
  ]);
});

t.test('the deadline during a retry wait: the last answer stands (missing), and no probe counted as cut', async (t) => {
  const waiting = channel('waiting', (probe) => answer(probe, 401));
  const result = await fanOut([waiting], HEADERS, settings(40, 10_000), deps).result;
  t.equal(result.verdict, 'NotSynced');
  t.same(result.peers, [{ name: 'waiting', outcome: 'missing', attempts: 1, lastStatus: 401, lastError: null, syncedAtMs: null }]);
  t.same(result.probes, { synced: 0, missing: 1, error: 0, unexpected: 0, departed: 0, aborted: 0 });
  t.equal(waiting.sent.length, 1);
});

t.test('a peer that answered, then had its next probe cut: its last answer stands, whatever cut it', async (t) => {
  // 401 twice, then no answer: the third probe is still in flight at the deadline (a loaded
  // machine delays it so), or times out first. Either way the peer said "missing" and said
  // nothing since: missing, not timeout.
  const inFlight = channel('in-flight', (probe, n) => n < 3 && answer(probe, 401));
  const timedOut = channel('timed-out', (probe, n) => (n < 3 ? answer(probe, 503) : setImmediate(() => probe.timedOut())));
  const never = channel('never', (probe) => setImmediate(() => probe.timedOut()));
  const result = await fanOut([inFlight, timedOut, never], HEADERS, settings(80), deps).result;
  t.same(
    result.peers.map((p) => [p.name, p.outcome, p.lastStatus, p.lastError]),
    [
      ['in-flight', 'missing', 401, null],
      ['timed-out', 'error', 503, 'PROBE_TIMEOUT'],
      ['never', 'timeout', null, 'PROBE_TIMEOUT'],
    ],
    'the last answer, beside why a later attempt got none; timeout only for the peer that never answered',
  );
  t.ok(result.peers.every((p) => p.attempts >= 3), 'each was probed again after its answers');
  t.equal(result.verdict, 'Timeout', 'a peer that never answered still makes it Timeout');
  const answeredOnly = await fanOut([channel('a', (probe, n) => n < 3 && answer(probe, 401)), channel('b', (probe) => answer(probe, 200))], HEADERS, settings(80), deps).result;
  t.equal(answeredOnly.verdict, 'NotSynced', 'and without it the answers decide');
});

t.test('retries that run out on probe timeouts: the last answer stands, timeout if there was none', async (t) => {
  const silent = channel('silent', (probe) => setImmediate(() => probe.timedOut()));
  const wentSilent = channel('went-silent', (probe, n) => (n === 1 ? answer(probe, 401) : setImmediate(() => probe.timedOut())));
  const capped: FanOutSettings = { ...settings(60_000), retry: { delayMs: 1, backoff: 1, maxDelayMs: 1, jitter: 0, maxRetries: 2 } };
  const result = await fanOut([silent, wentSilent], HEADERS, capped, deps).result;
  t.same(
    result.peers.map((p) => [p.name, p.outcome, p.attempts, p.lastError]),
    [
      ['silent', 'timeout', 3, 'PROBE_TIMEOUT'],
      ['went-silent', 'missing', 3, 'PROBE_TIMEOUT'],
    ],
    'long before the deadline: the retry cap ended them',
  );
  t.equal(result.verdict, 'Timeout');
});

t.test('a peer whose probe timed out departs while its retry waits past the deadline: departed, not timeout', async (t) => {
  // A probe cut by the probe timeout is retried until the deadline, whatever the retry window
  // says; here its next retry would come 10 s later, long after the 40 ms deadline.
  const leaver = channel('leaver', (probe, _n, c) =>
    setImmediate(() => {
      probe.timedOut();
      c.leaving = true;
    }),
  );
  const stayer = channel('stayer', (probe) => answer(probe, 200));
  const result = await fanOut([leaver, stayer], HEADERS, settings(40, 10_000, 0), deps).result;
  t.same(result.peers[0], { name: 'leaver', outcome: 'departed', attempts: 1, lastStatus: null, lastError: 'PROBE_TIMEOUT', syncedAtMs: null });
  t.equal(result.verdict, 'Synced', 'the peer that is gone does not count');
  t.equal(leaver.sent.length, 1, 'and was not probed again');
});

t.test('end(): settles at once by the same rule, and its probes are cut after', async (t) => {
  const answered = channel('answered', (probe, n) => n === 1 && answer(probe, 401));
  const silent = channel('silent', never);
  const running = fanOut([answered, silent], HEADERS, settings(60_000), deps);
  await new Promise<void>((resolve) => {
    const poll = (): void => (answered.sent.length === 2 ? resolve() : void setImmediate(poll));
    poll();
  });
  const endedAt = performance.now();
  running.end();
  const result = await running.result;
  t.ok(performance.now() - endedAt < 1_000, 'long before its 60 s deadline');
  t.same(
    result.peers.map((p) => [p.name, p.outcome]),
    [
      ['answered', 'missing'],
      ['silent', 'timeout'],
    ],
  );
  t.equal(result.probes.aborted, 2, 'both probes in flight counted aborted');
  await nextTurn();
  t.ok([...answered.sent, ...silent.sent].every((p) => p.isSettled), 'and cut');
  running.end();
  t.equal(await running.result, result, 'ending it again changes nothing');
});

t.test('the deadline with a probe in flight: counted aborted once, and cut after the answer', async (t) => {
  const hanging = channel('hanging', never);
  const result = await fanOut([hanging], HEADERS, settings(20), deps).result;
  t.same(result.peers, [{ name: 'hanging', outcome: 'timeout', attempts: 1, lastStatus: null, lastError: null, syncedAtMs: null }]);
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
  const result = await fanOut([refused], HEADERS, settings(40, 10_000), deps).result;
  t.same(result.peers, [{ name: 'refused', outcome: 'error', attempts: 1, lastStatus: null, lastError: 'ECONNREFUSED', syncedAtMs: null }], 'a refusal is an answer: error, not timeout');
  t.same(result.probes, { synced: 0, missing: 0, error: 1, unexpected: 0, departed: 0, aborted: 0 });
});

t.test('an exception in a check\'s own step rejects that check and stops its other peers', async (t) => {
  const planted = new Error('planted');
  const throwsAtOnce = channel('a', () => {
    throw planted;
  });
  const bystander = channel('b', never);
  await t.rejects(fanOut([bystander, throwsAtOnce], HEADERS, settings(60_000), deps).result, planted, 'thrown by the first probe');
  await nextTurn();
  t.equal(bystander.sent[0]?.isSettled, true, 'the other peer\'s probe is cut');

  const throwsOnRetry = channel('c', (probe, n) => {
    if (n === 1) answer(probe, 401);
    else throw planted;
  });
  await t.rejects(fanOut([throwsOnRetry], HEADERS, settings(60_000), deps).result, planted, 'thrown by a retry');
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
  await t.rejects(fanOut([unnamed], HEADERS, settings(20), deps).result, planted, 'thrown while building the result at the deadline');
  await nextTurn();
  t.equal(unnamed.sent[0]?.isSettled, true, 'its probe is cut');
});

t.test('only an unexpected answer reports its peer as misconfigured; a peer that answered and then left keeps its answer', async (t) => {
  // "held" answers 200 and leaves; "late" answers 401 twice, then 200, after "held" has left.
  const held = channel('held', (probe, _n, c) => answer(probe, 200, () => (c.leaving = true)));
  const late = channel('late', (probe, n) => answer(probe, n < 3 ? 401 : 200));
  const wrong = channel('wrong', (probe) => answer(probe, 404));
  const result = await fanOut([held, late, wrong], HEADERS, settings(60_000), deps).result;
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
