// The reflector's loop against a scripted in-process API (no network, manual clock): the
// protocol decisions — which resourceVersion, when to relist, when to back off, the watchdog.
// The same behaviours are shown against a real kube-apiserver in discovery-kubernetes.test.ts.
import t from 'tap';
import { KubeApiError, type KubeHttp, type Query } from '../sidecar/discovery/kubernetes/kube-http.js';
import { narrowPod, type PodLite } from '../sidecar/discovery/kubernetes/objects.js';
import { Reflector, watchdogMs, type ReflectorState, type Verb } from '../sidecar/discovery/kubernetes/reflector.js';
import { captureLogger, ManualClock, podJson } from './support/discovery-harness.js';

interface WatchHandle {
  readonly query: Query;
  open(): void;
  send(type: string, object: unknown): void;
  close(): void;
  fail(err: Error): void;
  readonly aborted: boolean;
}

class ScriptedApi implements KubeHttp {
  readonly lists: Query[] = [];
  readonly watches: WatchHandle[] = [];
  /** Answers for the next lists, in order; an Error rejects. When empty, a list hangs until aborted. */
  readonly listAnswers: (unknown | Error)[] = [];

  getJson(_path: string, query: Query, signal: AbortSignal): Promise<unknown> {
    this.lists.push(query);
    const answer = this.listAnswers.shift();
    if (answer instanceof Error) return Promise.reject(answer);
    if (answer !== undefined) return Promise.resolve(answer);
    return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new KubeApiError(undefined, 'Aborted', String(signal.reason)))));
  }

  watch(_path: string, query: Query, signal: AbortSignal, onOpen: () => void, onEvent: (event: unknown) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        if (err) reject(err);
        else resolve();
      };
      signal.addEventListener('abort', () => {
        handle.aborted = true;
        const reason: unknown = signal.reason;
        finish(new KubeApiError(undefined, 'Aborted', reason instanceof Error ? reason.message : String(reason)));
      });
      const handle = {
        query,
        aborted: false,
        open: () => onOpen(),
        send: (type: string, object: unknown) => {
          try {
            onEvent({ type, object });
          } catch (err) {
            finish(err as Error);
          }
        },
        close: () => finish(),
        fail: (err: Error) => finish(err),
      };
      this.watches.push(handle);
    });
  }

  lastWatch(): WatchHandle {
    const w = this.watches.at(-1);
    if (w === undefined) throw new Error('no watch yet');
    return w;
  }
}

function podList(rv: string, ...names: string[]): unknown {
  return { metadata: { resourceVersion: rv }, items: names.map((n) => podJson(n, { rv })) };
}

function setup(opts: { watchTimeoutS?: number; resyncMs?: number } = {}) {
  const api = new ScriptedApi();
  const clock = new ManualClock();
  const { log, lines } = captureLogger();
  const states: ReflectorState[] = [];
  const failures: { verb: Verb; err: KubeApiError }[] = [];
  let changes = 0;
  const r = new Reflector<PodLite>({
    resource: 'pods',
    path: '/api/v1/namespaces/ns/pods',
    narrow: narrowPod,
    http: api,
    watchTimeoutS: opts.watchTimeoutS ?? 60,
    resyncMs: opts.resyncMs ?? 3_600_000,
    clock,
    random: () => 0,
    log,
    listener: {
      changed: () => void changes++,
      stateChanged: (s) => void states.push(s),
      failed: (verb, err) => void failures.push({ verb, err }),
    },
  });
  const names = (): string[] => [...r.items()].map((p) => p.metadata.name).sort();
  return { api, clock, r, states, failures, lines, names, changes: () => changes };
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
  t.equal(s.r.state, 'synced');

  const w = s.api.lastWatch();
  w.open();
  w.send('ADDED', podJson('c', { rv: '101' }));
  w.send('MODIFIED', podJson('a', { rv: '102', ip: '10.0.0.9' }));
  w.send('DELETED', podJson('b', { rv: '103' }));
  t.same(s.names(), ['a', 'c']);
  t.equal([...s.r.items()].find((p) => p.metadata.name === 'a')?.podIP, '10.0.0.9');
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
  t.ok(s.states.includes('listing'));
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
  s.api.listAnswers.push(new KubeApiError(undefined, 'ECONNREFUSED', 'connect ECONNREFUSED'), new KubeApiError(503, 'ServiceUnavailable', '503'), podList('5', 'a'));
  s.r.start({});
  await s.clock.advance(0);
  t.equal(s.r.state, 'failing');
  t.equal(s.failures[0]?.verb, 'list');
  t.same(s.clock.pending(), [125], 'first retry after 125–250 ms (random 0 → lower bound)');
  await s.clock.advance(125);
  t.equal(s.api.lists.length, 2);
  t.same(s.clock.pending(), [250]);
  await s.clock.advance(250);
  t.equal(s.r.state, 'synced');
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
  t.equal(s.r.state, 'failing');
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

t.test('stop() ends a hanging list and a backoff sleep', async (t) => {
  const s = setup();
  s.r.start({});
  await s.clock.advance(0);
  await s.r.stop();
  t.equal(s.r.state, 'stopped');
  const s2 = setup();
  s2.api.listAnswers.push(new KubeApiError(500, 'InternalError', 'boom'));
  s2.r.start({});
  await s2.clock.advance(0);
  await s2.r.stop();
  t.equal(s2.r.state, 'stopped');
});
