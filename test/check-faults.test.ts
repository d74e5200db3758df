// Faults injected at the peers and inside a check: every check is answered by its deadline with
// the right outcomes, a fault in one check reaches no other, and nothing is left running after.
// The sidecar, its peers and its client share this process: on a loaded machine all of them are
// slowed together. The probe timeout is set far above the stalls such a machine gives (a peer
// that answers is never taken for one that does not), the faulty peers are slower than it by
// far, and the deadline is held against the sidecar's own clock (durationMs) plus the event
// loop's delay measured in the same run (timing-floor.ts).
import t from 'tap';
import { handleCounts, handleGrowth, settledHandles } from './support/handles.js';
import { startReplicas, type ReplicaServer } from './support/replica-server.js';
import { peersEnv, sendCheck, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { boundOf, withLoopDelay } from './support/timing-floor.js';
import { waitFor } from './support/wait.js';

const HARD_TIMEOUT_MS = 3000;
const PROBE_TIMEOUT_MS = 1000;
/** The deadline is the bound; this much more is the scheduling allowance the issue states (on top of the floors, timing-floor.ts). */
const ALLOWANCE_MS = 100;
let seq = 0;
const newToken = (): string => `fault-${process.pid}-${++seq}`;

let replicas: ReplicaServer[];
let sidecar: RunningSidecar;
let randomCalls = 0;
let throwOnRandomCall = -1;

t.before(async () => {
  replicas = await startReplicas(4, { net: '127.0.15.', first: 10, port: 18120 });
  sidecar = await startSidecar(
    {
      SYNCER_PEERS: peersEnv(replicas),
      SYNCER_HARD_TIMEOUT_MS: String(HARD_TIMEOUT_MS),
      SYNCER_PROBE_TIMEOUT_MS: String(PROBE_TIMEOUT_MS),
      SYNCER_RETRY_DELAY_MS: '5',
      SYNCER_SYNCED_TTL_MS: '0',
    },
    undefined,
    {
      // Randomness is injected: a test can make it throw inside one check's retry decision.
      random: () => {
        if (++randomCalls === throwOnRandomCall) throw new Error('planted failure');
        return 0.5;
      },
    },
  );
});
t.teardown(async () => {
  await sidecar.stop();
  await Promise.all(replicas.map((r) => r.close()));
});
t.beforeEach(() => {
  for (const r of replicas) r.behaviour = { kind: 'store' };
});

const check = (token: string) => sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token });
/**
 * A check, timed with the event loop's delay meanwhile, and the bound the sidecar's own time to
 * its verdict must meet (the client's round trip in this busy process is not the sidecar's).
 */
const deadlineCheck = async (token: string) => {
  const { result, lateMs } = await withLoopDelay(() => check(token));
  return { r: result, ms: result.body.durationMs ?? NaN, bound: boundOf(HARD_TIMEOUT_MS, ALLOWANCE_MS, { lateMs, hopMs: 0 }) };
};
const outcome = (r: Awaited<ReturnType<typeof check>>, name: string) => r.body.peers?.find((p) => p.name === name);

t.test('200 with an endless body: the status decides, the connection is dropped, memory stays flat', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  replicas[1]!.behaviour = { kind: 'endless-body' };
  const before = process.memoryUsage();
  const { result: results, lateMs } = await withLoopDelay(() => Promise.all(Array.from({ length: 20 }, () => check(token))));
  for (const r of results) {
    t.equal(r.tokenStatus, 'Synced');
    t.match(outcome(r, 'pod-1'), { outcome: 'synced', lastStatus: 200, attempts: 1 });
  }
  const grown = (process.memoryUsage().arrayBuffers - before.arrayBuffers) / 1048576;
  // 20 checks × an endless body: a reader of whole bodies would hold hundreds of MB by now.
  t.ok(grown < 32, `buffers grew by ${grown.toFixed(1)} MB only`);
  const slowest = Math.max(...results.map((r) => r.body.durationMs ?? NaN));
  t.ok(slowest < HARD_TIMEOUT_MS + lateMs, `answered before the deadline (slowest ${slowest.toFixed(0)} ms; the event loop fell behind by up to ${lateMs.toFixed(0)} ms)`);
});

t.test('an answer dripped byte by byte: slower than the probe timeout is a timeout; faster is an answer', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  replicas[2]!.behaviour = { kind: 'drip', everyMs: 50 }; // ~80 bytes → ~4 s, far over 1 s
  const { r: slow, ms, bound } = await deadlineCheck(token);
  t.equal(slow.tokenStatus, 'Timeout');
  t.match(outcome(slow, 'pod-2'), { outcome: 'timeout', lastError: 'PROBE_TIMEOUT' });
  t.ok(ms <= bound.ms, `answered by the deadline (${ms.toFixed(0)} ms; bound ${bound.why})`);
  replicas[2]!.behaviour = { kind: 'drip', everyMs: 0 };
  const fast = await check(token);
  t.equal(fast.tokenStatus, 'Synced');
});

t.test('garbage instead of HTTP is a transient error, retried until the window ends', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  replicas[3]!.behaviour = { kind: 'garbage' };
  const { r, ms, bound } = await deadlineCheck(token);
  t.equal(r.tokenStatus, 'Partialy');
  const p = outcome(r, 'pod-3');
  t.equal(p?.outcome, 'error');
  t.match(p?.lastError ?? '', /^(HPE_|HTTPParserError|UND_ERR)/, `undici's parser error (${p?.lastError})`);
  t.ok((p?.attempts ?? 0) > 1, 'retried');
  t.ok(ms <= bound.ms, `answered by the deadline (${ms.toFixed(0)} ms; bound ${bound.why})`);
});

t.test('a peer killed mid-check: its probes fail, the check still answers by the deadline', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  let open!: () => void;
  replicas[1]!.behaviour = { kind: 'gate', open: new Promise<void>((resolve) => (open = resolve)) };
  const pending = deadlineCheck(token);
  const victim = replicas[1]!;
  // Killed while its probe is in flight (received, held at the gate): connections reset, port closed.
  await waitFor(() => victim.requestsFor(token) > 0, 'the probe to reach the victim');
  await victim.close();
  open();
  const { r, ms, bound } = await pending;
  t.equal(outcome(r, 'pod-1')?.outcome, 'error');
  t.match(outcome(r, 'pod-1')?.lastError ?? '', /ECONNREFUSED|UND_ERR_SOCKET|ECONNRESET/);
  t.equal(r.tokenStatus, 'Partialy');
  t.ok(ms <= bound.ms, `answered by the deadline (${ms.toFixed(0)} ms; bound ${bound.why})`);
  replicas[1] = (await startReplicas(1, { net: '127.0.15.', first: 11, port: 18120 }))[0]!;
});

t.test('an exception inside one check answers it 500 and touches no other check', async (t) => {
  const victim = newToken();
  const bystander = newToken();
  // The victim's peers answer 401 (they never get it): its first retry decision calls random().
  for (const r of replicas) r.give(bystander);
  // The next call to random() is the victim's first retry decision (the bystander never retries).
  throwOnRandomCall = randomCalls + 1;
  const [v, b1, b2] = await Promise.all([check(victim), check(bystander), check(bystander)]);
  t.equal(v.status, 500, 'the check whose code threw gets 500');
  t.same(v.body, { error: 'internal error' }, 'and says no more');
  t.same([b1.status, b1.tokenStatus, b2.tokenStatus], [200, 'Synced', 'Synced'], 'checks beside it are answered as if nothing happened');
  t.ok(sidecar.logs.some((l) => l.includes('"level":50') && l.includes('internal error in a check') && l.includes('planted failure')), 'one error line with the cause');
  const after = await check(bystander);
  t.equal(after.tokenStatus, 'Synced', 'the process goes on');
  const metrics = await (await fetch(`${sidecar.opsUrl}/metrics`)).text();
  t.match(metrics, /syncer_checks_rejected_total\{reason="internal_error"\} 1/);
});

t.test('after a batch of faulty checks no socket or timer of theirs is left', async (t) => {
  const token = newToken();
  for (const r of replicas) r.give(token);
  // Connections to healthy peers are kept alive by design: count with them warm.
  await check(token);
  const before = handleCounts();
  replicas[1]!.behaviour = { kind: 'hang' };
  replicas[2]!.behaviour = { kind: 'endless-body' };
  replicas[3]!.behaviour = { kind: 'garbage' };
  await Promise.all(Array.from({ length: 10 }, () => check(token)));
  for (const r of replicas) r.behaviour = { kind: 'store' };
  // Dropped connections close asynchronously: wait (bounded) until they are gone.
  const after = await settledHandles(before, { sockets: 2, timers: 2 });
  const grown = handleGrowth(before, after);
  t.ok(grown.sockets + grown.timers <= 2, `sockets and timers: ${JSON.stringify(before)} before, ${JSON.stringify(after)} after (the shared probe sweep and a reconnect may be pending)`);
});
