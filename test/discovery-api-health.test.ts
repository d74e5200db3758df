// The one place that knows whether Kubernetes discovery is failing (api-health.ts), against a
// scripted in-process API and a manual clock: what a failure logs and tells the store, when the
// readiness poll runs and how often, and when the list-watch loops may retry. The same outage
// against a real kube-apiserver is in discovery-kubernetes.test.ts.
import t from 'tap';
import { ApiHealth, READINESS_POLL } from '../sidecar/discovery/kubernetes/api-health.js';
import { KubeApiError } from '../sidecar/discovery/kubernetes/kube-http.js';
import { ObjectCache } from '../sidecar/discovery/kubernetes/object-cache.js';
import { narrowPod, type PodLite } from '../sidecar/discovery/kubernetes/objects.js';
import { Reflector } from '../sidecar/discovery/kubernetes/reflector.js';
import { captureLogger, ManualClock } from './support/discovery-harness.js';
import { podList, refused, ScriptedApi } from './support/discovery-scripted-api.js';

function setup(random = (): number => 0) {
  const api = new ScriptedApi();
  const clock = new ManualClock();
  const { log, lines } = captureLogger();
  const reported: { kind: string; reason: string }[] = [];
  let recoveries = 0;
  const health = new ApiHealth({
    http: api,
    clock,
    random,
    log,
    namespace: 'ns',
    store: { reportFailure: (kind, reason) => void reported.push({ kind, reason }) },
    recovered: () => void recoveries++,
  });
  /** Resolves to true if answering() resolved within `ms` of manual time. */
  const answersWithin = async (ms: number): Promise<boolean> => {
    let answered = false;
    void health.answering(new AbortController().signal).then(() => (answered = true));
    await clock.advance(ms);
    return answered;
  };
  return { api, clock, lines, reported, health, answersWithin, recoveries: () => recoveries };
}

const refusals = (n: number): KubeApiError[] => Array.from({ length: n }, refused);

t.test('no answer: the failure is told to the store and logged once, and one readiness poll runs at a capped, jittered period', async (t) => {
  for (const [random, expected] of [
    [() => 0, [125, 250, 500, 500, 500]],
    [() => 0.999999, [250, 500, 1000, 1000, 1000]],
  ] as const) {
    const s = setup(random);
    s.api.statusAnswers.push(...refusals(10));
    s.health.failed('pods', 'watch', refused());
    s.health.failed('replicasets', 'watch', refused());
    s.health.failed('pods', 'list', refused());
    t.equal(s.health.failing(), true);
    t.match(s.health.problem(), /^list pods failed: connect ECONNREFUSED/, 'the latest failure is the problem');
    t.same(s.reported.map((r) => r.kind), ['watch', 'watch', 'list'], 'every failure is counted by the store');
    t.equal(s.lines.filter((l) => l.level === 40).length, 2, 'one warning per resource, repeats at debug');
    const delays: number[] = [];
    for (let i = 0; i < expected.length; i++) {
      delays.push(...s.clock.pending());
      await s.clock.advance(s.clock.pending()[0] ?? 0);
      t.equal(s.api.statusCalls.length, i + 1);
    }
    t.same(delays, expected, 'one poll at a time, growing to the cap, jittered within [cap/2, cap]');
    t.ok(Math.max(...delays) <= READINESS_POLL.maxMs);
    t.same(new Set(s.api.statusCalls), new Set(['/readyz']));
    t.equal(s.api.listsAndWatches(), 0, 'the poll is the only request');
    await s.health.stop();
  }
});

t.test('the first 200 from /readyz releases every waiting loop and ends the poll', async (t) => {
  const s = setup();
  s.api.statusAnswers.push(refused(), 500, 200);
  s.health.failed('pods', 'watch', refused());
  t.equal(await s.answersWithin(125 + 250), false, 'refused, then 500 (not ready): still waiting');
  t.equal(await s.answersWithin(500), true, 'released by the 200');
  t.equal(s.api.statusCalls.length, 3);
  await s.clock.advance(60_000);
  t.equal(s.api.statusCalls.length, 3, 'no poll once it answers');
  t.equal(s.health.failing(), true, 'answering is not recovered: the resource is failing until its loop succeeds');
  s.health.succeeded('pods');
  t.equal(s.health.failing(), false);
  t.equal(s.recoveries(), 1);
  await s.health.stop();
});

t.test('a success reported by any loop releases the waiters at once', async (t) => {
  const s = setup();
  s.api.statusAnswers.push(...refusals(5));
  s.health.failed('pods', 'watch', refused());
  let released = false;
  void s.health.answering(new AbortController().signal).then(() => (released = true));
  await s.clock.advance(0);
  s.health.succeeded('deployments');
  await s.clock.advance(0);
  t.equal(released, true);
  await s.clock.advance(10_000);
  t.equal(s.api.statusCalls.length, 0, 'the poll ended before its first request');
  await s.health.stop();
});

t.test('a starting API server’s brief 403 on /readyz is not taken as ready', async (t) => {
  const s = setup();
  s.api.statusAnswers.push(403, 500, 403, 500, 200);
  s.health.failed('pods', 'watch', refused());
  t.equal(await s.answersWithin(125 + 250 + 500 + 500), false, '403, 500, 403, 500: not yet');
  t.equal(await s.answersWithin(500), true, 'the 200');
  t.equal(s.lines.filter((l) => /cannot read \/readyz/.test(l.msg)).length, 0);
  await s.health.stop();
});

t.test('an API server that keeps answering /readyz with 403 is taken as up (a cluster without system:public-info-viewer)', async (t) => {
  const s = setup();
  s.api.statusAnswers.push(403, 403, 403);
  s.health.failed('pods', 'list', new KubeApiError(503, 'ServiceUnavailable', '503 ServiceUnavailable: not ready'));
  t.equal(await s.answersWithin(125 + 250), false, 'two answers in a row may still be a server starting');
  t.equal(await s.answersWithin(500), true, 'the third is taken as up');
  t.equal(s.lines.filter((l) => /cannot read \/readyz/.test(l.msg)).length, 1, 'said once');
  await s.health.stop();
});

t.test('a 4xx from a list is an answer: no poll, the loop retries on its own backoff; a 403 is logged once per cause, by name', async (t) => {
  const s = setup();
  for (let i = 0; i < 3; i++) s.health.failed('pods', 'watch', new KubeApiError(403, 'Forbidden', 'pods is forbidden'));
  t.equal(await s.answersWithin(0), true);
  await s.clock.advance(60_000);
  t.equal(s.api.statusCalls.length, 0);
  const errors = s.lines.filter((l) => l.level === 50);
  t.equal(errors.length, 1);
  t.equal(errors[0]?.msg, 'forbidden: cannot watch pods in namespace ns — grant get/list/watch on pods (roles/)');
  t.equal(s.health.problem(), errors[0]?.msg);
  await s.health.stop();
});

t.test('recovered is told once, when the last failing resource succeeds; each recovery is logged', async (t) => {
  const s = setup();
  s.health.failed('pods', 'watch', new KubeApiError(500, 'InternalError', 'boom'));
  s.health.failed('deployments', 'list', new KubeApiError(500, 'InternalError', 'boom'));
  s.health.succeeded('pods');
  t.equal(s.recoveries(), 0, 'deployments still failing');
  t.match(s.health.problem(), /deployments failed/);
  s.health.succeeded('deployments');
  s.health.succeeded('deployments');
  t.equal(s.recoveries(), 1);
  t.equal(s.health.problem(), undefined);
  t.same(
    s.lines.filter((l) => /reachable again/.test(l.msg)).map((l) => l['resource']),
    ['pods', 'deployments'],
  );
  await s.health.stop();
});

t.test('stop() ends the poll and releases waiters', async (t) => {
  const s = setup();
  s.health.failed('pods', 'watch', refused());
  let released = false;
  void s.health.answering(new AbortController().signal).then(() => (released = true));
  await s.clock.advance(0);
  await s.health.stop();
  t.equal(released, true);
  t.same(s.clock.pending(), [], 'no timer left');
  s.health.failed('pods', 'watch', refused());
  t.same(s.clock.pending(), [], 'no poll after stop()');
});

t.test('an outage seen by three loops: only the poll talks to the API server, and its first 200 brings them all back at once', async (t) => {
  const s = setup(() => 0.5);
  const { log } = captureLogger();
  const reflectors = (['pods', 'replicasets', 'deployments'] as const).map((resource) => {
    const cache = new ObjectCache<PodLite>(() => undefined);
    const reflector = new Reflector<PodLite>({
      resource,
      path: `/x/${resource}`,
      narrow: narrowPod,
      http: s.api,
      store: cache,
      health: s.health,
      watchTimeoutS: 60,
      resyncMs: 3_600_000,
      clock: s.clock,
      random: () => 0.5,
      log,
    });
    return { cache, reflector };
  });
  s.api.listAnswers.push(podList('1', 'a'), podList('1', 'b'), podList('1', 'c'));
  for (const r of reflectors) r.reflector.start({});
  await s.clock.advance(0);
  t.equal(s.api.watches.length, 3);

  for (const w of s.api.watches) w.fail(refused());
  s.api.statusAnswers.push(...refusals(1_000));
  await s.clock.advance(0);
  const before = s.api.listsAndWatches();
  const outageMs = 60_000;
  await s.clock.advance(outageMs);
  const polls = s.api.statusCalls.length;
  t.equal(s.api.listsAndWatches(), before, 'no list or watch during the outage');
  t.comment(`readiness polls during a ${outageMs / 1000} s outage: ${polls} (${((polls * 1000) / outageMs).toFixed(2)} per second, one sidecar)`);
  t.ok(polls <= outageMs / (READINESS_POLL.maxMs / 2) + 3, 'never more often than every cap/2');
  t.ok(polls >= outageMs / READINESS_POLL.maxMs, 'never less often than every cap');

  s.api.statusAnswers.length = 0;
  s.api.statusAnswers.push(200);
  const next = s.clock.pending()[0] ?? 0;
  t.ok(next <= READINESS_POLL.maxMs, 'the next poll is due within the cap');
  await s.clock.advance(next);
  t.equal(s.api.watches.length, 6, 'all three loops watched again right after the poll’s 200, with no delay of their own');
  for (const w of s.api.watches.slice(3)) w.open();
  t.equal(s.health.failing(), false);
  t.equal(s.recoveries(), 1);
  await Promise.all(reflectors.map((r) => r.reflector.stop()));
  await s.health.stop();
});
