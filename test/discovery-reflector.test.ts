// The reflector's loop against a scripted in-process API (no network, manual clock): the
// protocol decisions — which resourceVersion, when to relist, when to back off, the watchdog —
// and what it writes into its store and tells the API's health. The same behaviours are shown
// against a real kube-apiserver in discovery-kubernetes.test.ts.
import t from 'tap';
import type { ApiResource, ApiVerb } from '../sidecar/discovery/kubernetes/api-errors.js';
import type { ApiHealthReporter } from '../sidecar/discovery/kubernetes/api-health.js';
import { KubeApiError } from '../sidecar/discovery/kubernetes/kube-http.js';
import { ObjectCache } from '../sidecar/discovery/kubernetes/object-cache.js';
import { narrowPod, type PodLite } from '../sidecar/discovery/kubernetes/objects.js';
import { Reflector, watchdogMs } from '../sidecar/discovery/kubernetes/reflector.js';
import { captureLogger, ManualClock, podJson } from './support/discovery-harness.js';
import { objectList, podList, refused, ScriptedApi, tooLargeStatus } from './support/discovery-scripted-api.js';

/** Records what the loop tells the API's health; answering() is held closed while `down`. */
class RecordingHealth implements ApiHealthReporter {
  readonly failures: { resource: ApiResource; verb: ApiVerb; err: KubeApiError }[] = [];
  successes = 0;
  down = false;
  private readonly waiters = new Set<() => void>();

  failed(resource: ApiResource, verb: ApiVerb, err: KubeApiError): void {
    this.failures.push({ resource, verb, err });
  }

  succeeded(): void {
    this.successes++;
  }

  answering(signal: AbortSignal): Promise<void> {
    if (!this.down) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => void (this.waiters.delete(done), resolve());
      this.waiters.add(done);
      signal.addEventListener('abort', done);
    });
  }

  answer(): void {
    this.down = false;
    for (const w of [...this.waiters]) w();
  }
}

/** The real cache, with a record of what the loop wrote into it. */
class RecordingCache extends ObjectCache<PodLite> {
  readonly calls: string[] = [];

  override replace(items: Iterable<PodLite>): number {
    this.calls.push('replace');
    return super.replace(items);
  }

  override invalidate(): void {
    this.calls.push('invalidate');
    super.invalidate();
  }
}

function setup(opts: { watchTimeoutS?: number; resyncMs?: number } = {}) {
  const api = new ScriptedApi();
  const clock = new ManualClock();
  const { log, lines } = captureLogger();
  const health = new RecordingHealth();
  let changes = 0;
  const cache = new RecordingCache(() => void changes++);
  const r = new Reflector<PodLite>({
    resource: 'pods',
    path: '/api/v1/namespaces/ns/pods',
    narrow: narrowPod,
    http: api,
    store: cache,
    health,
    watchTimeoutS: opts.watchTimeoutS ?? 60,
    resyncMs: opts.resyncMs ?? 3_600_000,
    clock,
    random: () => 0,
    log,
  });
  const names = (): string[] => [...cache.items()].map((p) => p.metadata.name).sort();
  return { api, clock, r, cache, health, failures: health.failures, lines, names, changes: () => changes };
}

t.test('lists, then watches from the list resourceVersion with bookmarks and the bound', async (t) => {
  const s = setup({ watchTimeoutS: 30 });
  s.api.listAnswers.push(podList('100', 'a', 'b'));
  s.r.start({ labelSelector: 'app=gw' });
  await s.clock.advance(0);
  t.same(s.names(), ['a', 'b']);
  t.match(s.api.lists[0], { labelSelector: 'app=gw', limit: '500' });
  t.equal(s.api.lists[0]?.['resourceVersion'], undefined, 'initial list is a consistent read');
  t.match(s.api.lastWatch().query, { labelSelector: 'app=gw', resourceVersion: '100', allowWatchBookmarks: 'true', timeoutSeconds: '30' });
  t.equal(s.cache.synced, true, 'the store holds a complete list');
  t.ok(s.health.successes >= 1, 'the list told the API health it answers');

  const w = s.api.lastWatch();
  w.open();
  w.send('ADDED', podJson('c', { rv: '101' }));
  w.send('MODIFIED', podJson('a', { rv: '102', ip: '10.0.0.9' }));
  w.send('DELETED', podJson('b', { rv: '103' }));
  t.same(s.names(), ['a', 'c']);
  t.equal(s.changes(), 4, 'the store told its reader of the list and of each event');
  t.equal([...s.cache.items()].find((p) => p.metadata.name === 'a')?.podIP, '10.0.0.9');
  w.send('BOOKMARK', { kind: 'Pod', metadata: { resourceVersion: '150' } });
  await s.clock.advance(20_000);
  w.close(); // the server's timeoutSeconds ran out
  await s.clock.advance(0);
  t.equal(s.api.lists.length, 1, 'a clean close does not relist');
  t.equal(s.api.lastWatch().query['resourceVersion'], '150', 're-watch from the bookmark');
  await s.r.stop();
});

t.test('410 Gone, as a watch ERROR event or as HTTP 410, relists without reporting a failure', async (t) => {
  const s = setup();
  s.api.listAnswers.push(podList('10', 'a'), podList('20', 'a', 'b'), podList('30', 'b'));
  s.r.start({});
  await s.clock.advance(0);
  s.api.lastWatch().open();
  s.api.lastWatch().send('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 10 (15)' });
  await s.clock.advance(0);
  t.equal(s.api.lists.length, 2, 'relisted at once');
  t.same(s.names(), ['a', 'b']);
  t.equal(s.api.lastWatch().query['resourceVersion'], '20');
  s.api.lastWatch().send('ADDED', podJson('c', { rv: '21' }));
  s.api.lastWatch().fail(new KubeApiError(410, 'Gone', '410 Gone'));
  await s.clock.advance(0);
  t.equal(s.api.lists.length, 3);
  t.same(s.names(), ['b'], 'the relist replaces the cache: deletions missed during the gap disappear');
  t.same(s.failures, [], '410 is routine, not a failure');
  t.same(s.cache.calls, ['invalidate', 'replace', 'invalidate', 'replace', 'invalidate', 'replace'], 'each 410 marks the store unsynced until its relist');
  t.equal(s.cache.synced, true);
  await s.r.stop();
});

t.test('a server behind our resourceVersion (504 too large, after a failover) is relisted, not watched again from the same version', async (t) => {
  const s = setup();
  s.api.listAnswers.push(podList('5000', 'a', 'b'), podList('300', 'a'), podList('301', 'c'));
  s.r.start({});
  await s.clock.advance(0);
  s.api.lastWatch().open();
  // The failover: the server that answers now is at 300. A watch-list answers so in an ERROR event.
  s.api.lastWatch().send('ERROR', tooLargeStatus('5000', '300'));
  await s.clock.advance(0);
  t.equal(s.api.lists.length, 2, 'relisted at once');
  t.same(s.names(), ['a'], 'the objects are the server’s now');
  t.equal(s.api.lastWatch().query['resourceVersion'], '300', 'watching from the new list’s version, not 5000');
  // The same answer as an HTTP 504 to the watch request.
  const [asked, current] = ['300', '120'];
  s.api.lastWatch().fail(new KubeApiError(504, 'Timeout', `504 Timeout: Timeout: Too large resource version: ${asked}, current: ${current}`, ['ResourceVersionTooLarge']));
  await s.clock.advance(0);
  t.equal(s.api.lists.length, 2, 'a second one with no progress in between waits (throttled like 410)');
  await s.clock.advance(125);
  t.equal(s.api.lists.length, 3);
  t.equal(s.api.lastWatch().query['resourceVersion'], '301');
  t.same(s.failures, [], 'not an API failure: the server answered');
  t.ok(s.lines.some((l) => /behind our resourceVersion \(504, too large\); relisting/.test(l.msg)), 'logged as what it is');
  await s.r.stop();
});

t.test('a list page answered "too large" (its continue token is from a server ahead) starts the list over', async (t) => {
  const s = setup();
  const firstPage = { metadata: { resourceVersion: '900', continue: 'next' }, items: [podJson('a', { rv: '900' })] };
  s.api.listAnswers.push(firstPage, new KubeApiError(504, 'Timeout', '504 Timeout: Timeout: Too large resource version: 900, current: 40', ['ResourceVersionTooLarge']), podList('40', 'z'));
  s.r.start({});
  await s.clock.advance(0);
  t.same(s.api.lists.map((q) => q['continue']), [undefined, 'next', undefined], 'the second page failed; the list started again from the first page');
  t.same(s.names(), ['z']);
  t.equal(s.api.lastWatch().query['resourceVersion'], '40');
  t.same(s.failures, []);
  await s.r.stop();
});

t.test('a 504 that is not about the resourceVersion stays a failure: watched again from the same version', async (t) => {
  const s = setup();
  s.api.listAnswers.push(objectList('7'));
  s.r.start({});
  await s.clock.advance(0);
  s.api.lastWatch().fail(new KubeApiError(504, 'Gateway Timeout', '504 Gateway Timeout: upstream timed out'));
  await s.clock.advance(125);
  t.equal(s.api.lists.length, 1, 'no relist');
  t.match(s.failures, [{ verb: 'watch', err: { status: 504 } }]);
  t.equal(s.api.lastWatch().query['resourceVersion'], '7');
  await s.r.stop();
});

t.test('repeated 410 without progress is throttled', async (t) => {
  const s = setup();
  s.api.listAnswers.push(podList('1'), podList('1'), podList('1'));
  s.r.start({});
  await s.clock.advance(0);
  s.api.lastWatch().send('ERROR', { code: 410 });
  await s.clock.advance(0);
  t.equal(s.api.lists.length, 2);
  s.api.lastWatch().send('ERROR', { code: 410 });
  await s.clock.advance(0);
  t.equal(s.api.lists.length, 2, 'second consecutive Gone waits');
  await s.clock.advance(125);
  t.equal(s.api.lists.length, 3);
  await s.r.stop();
});

t.test('failures back off exponentially with jitter, are reported, and recover', async (t) => {
  const s = setup();
  s.api.listAnswers.push(refused(), new KubeApiError(503, 'ServiceUnavailable', '503'), podList('5', 'a'));
  s.r.start({});
  await s.clock.advance(0);
  t.match(s.failures, [{ resource: 'pods', verb: 'list', err: { reason: 'ECONNREFUSED' } }], 'the failure is told to the API health');
  t.equal(s.cache.synced, false);
  t.same(s.clock.pending(), [125], 'first retry after 125–250 ms (random 0 → lower bound)');
  await s.clock.advance(125);
  t.equal(s.api.lists.length, 2);
  t.same(s.clock.pending(), [250]);
  await s.clock.advance(250);
  t.equal(s.cache.synced, true);
  t.equal(s.health.successes, 1, 'recovery is told to the API health');
  t.same(s.names(), ['a']);
  // Now the watch fails repeatedly: the schedule continues from where a healthy watch reset it.
  for (const expected of [125, 250, 500, 1000]) {
    s.api.lastWatch().fail(new KubeApiError(undefined, 'ECONNRESET', 'socket hang up'));
    await s.clock.advance(0);
    t.same(s.clock.pending().filter((d) => d < 60_000), [expected], `watch retry after ${expected} ms`);
    await s.clock.advance(expected);
  }
  t.equal(s.failures.filter((f) => f.verb === 'watch').length, 4);
  t.equal(s.api.lists.length, 3, 'watch failures re-watch from the last resourceVersion, no relist');
  t.equal(s.api.lastWatch().query['resourceVersion'], '5');
  await s.r.stop();
});

t.test('a watch that stays open past timeoutSeconds + margin is aborted as dead', async (t) => {
  const s = setup({ watchTimeoutS: 10 });
  s.api.listAnswers.push(podList('7', 'a'));
  s.r.start({});
  await s.clock.advance(0);
  const w = s.api.lastWatch();
  w.open();
  await s.clock.advance(watchdogMs(10) - 1);
  t.equal(w.aborted, false, 'not before the bound');
  await s.clock.advance(1);
  t.equal(w.aborted, true);
  t.match(s.failures[0]?.err.message, /treating it as dead/);
  t.equal(s.failures[0]?.verb, 'watch', 'told to the API health as a failed watch');
  t.same(s.names(), ['a'], 'the cache is kept');
  await s.clock.advance(250);
  t.equal(s.api.watches.length, 2, 'watched again');
  t.equal(s.api.lastWatch().query['resourceVersion'], '7');
  await s.r.stop();
});

t.test('a watch that closes at once without events is not retried in a tight loop', async (t) => {
  const s = setup();
  s.api.listAnswers.push(podList('1'));
  s.r.start({});
  await s.clock.advance(0);
  for (let i = 0; i < 3; i++) {
    s.api.lastWatch().close();
    await s.clock.advance(0);
  }
  t.equal(s.api.watches.length, 1, 'waiting before the next watch');
  await s.clock.advance(125);
  t.equal(s.api.watches.length, 2);
  t.same(s.failures, [], 'not reported as a failure');
  await s.r.stop();
});

t.test('the periodic relist replaces the cache and warns about drift', async (t) => {
  const s = setup({ resyncMs: 60_000 });
  s.api.listAnswers.push(podList('1', 'a'), podList('9', 'a', 'ghost'));
  s.r.start({});
  await s.clock.advance(0);
  await s.clock.advance(54_000); // 0.9 × resyncMs with random 0
  t.equal(s.api.lists.length, 2);
  t.same(s.names(), ['a', 'ghost']);
  t.ok(s.lines.some((l) => l.level === 40 && /missed/.test(l.msg) && l['drift'] === 2), 'drift warned (a changed, ghost new)');
  t.same(s.failures, []);
  await s.r.stop();
});

t.test('a new selector aborts the watch and relists with it', async (t) => {
  const s = setup();
  s.api.listAnswers.push(podList('1', 'a'), podList('2', 'b'));
  s.r.start({ labelSelector: 'app=old' });
  await s.clock.advance(0);
  const w = s.api.lastWatch();
  s.r.start({ labelSelector: 'app=old' });
  await s.clock.advance(0);
  t.equal(w.aborted, false, 'same selector: nothing restarts');
  s.r.start({ labelSelector: 'app=new' });
  await s.clock.advance(0);
  t.equal(w.aborted, true);
  t.equal(s.api.lists[1]?.['labelSelector'], 'app=new');
  t.same(s.names(), ['b']);
  t.equal(s.api.lastWatch().query['labelSelector'], 'app=new');
  t.same(s.failures, []);
  await s.r.stop();
});

t.test('stop() ends a hanging list, a backoff sleep and a wait for the API server', async (t) => {
  const s = setup();
  s.r.start({});
  await s.clock.advance(0);
  await s.r.stop();
  await s.clock.advance(60_000);
  t.equal(s.api.lists.length, 1, 'stopped: nothing sent after stop()');
  t.same(s.clock.pending(), [], 'no timer left');
  const s2 = setup();
  s2.api.listAnswers.push(new KubeApiError(500, 'InternalError', 'boom'));
  s2.r.start({});
  await s2.clock.advance(0);
  await s2.r.stop();
  await s2.clock.advance(60_000);
  t.equal(s2.api.lists.length, 1, 'stopped during the backoff: no retry');
  t.same(s2.clock.pending(), []);
  const s3 = setup();
  s3.health.down = true;
  s3.api.listAnswers.push(refused());
  s3.r.start({});
  await s3.clock.advance(1_000);
  await s3.r.stop();
  s3.health.answer();
  await s3.clock.advance(60_000);
  t.equal(s3.api.lists.length, 1, 'stopped while waiting for the API server: no retry');
});

t.test('after a failure, the loop sends nothing until the API health says the server answers', async (t) => {
  const s = setup();
  s.api.listAnswers.push(podList('3', 'a'));
  s.r.start({});
  await s.clock.advance(0);
  s.health.down = true;
  s.api.lastWatch().fail(refused());
  await s.clock.advance(60_000);
  t.equal(s.api.listsAndWatches(), 2, 'one list, one watch: no retry while the API server does not answer, however long');
  s.health.answer();
  await s.clock.advance(0);
  t.equal(s.api.watches.length, 2, 'watched again as soon as it answers, without a further delay');
  t.equal(s.api.lastWatch().query['resourceVersion'], '3', 'from the last resourceVersion');
  t.same(s.names(), ['a'], 'the store kept its objects throughout');
  await s.r.stop();
});

t.test('a periodic relist due while the loop waits does not cut the wait short', async (t) => {
  const s = setup({ resyncMs: 10_000 });
  s.api.listAnswers.push(podList('3', 'a'), podList('4', 'a'));
  s.r.start({});
  await s.clock.advance(0);
  s.health.down = true;
  s.api.lastWatch().fail(refused());
  await s.clock.advance(20_000);
  t.equal(s.api.lists.length, 1, 'no list while waiting');
  s.health.answer();
  await s.clock.advance(0);
  t.equal(s.api.lists.length, 2, 'the due relist runs when the wait ends');
  await s.r.stop();
});
