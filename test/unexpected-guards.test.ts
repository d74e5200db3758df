// Every entry point that is not a request catches what it throws, reports it (unexpected.ts) and
// goes on with its last good state: timers (the coalesced recomputation, the TLS re-read, the cut
// of a finished check's probes; the probe timeout sweep's is in probe-timeouts.test.ts), event handlers (the object cache's
// reader, the ops listener, the peer store's observers) and promises nobody awaits (the
// list-watch loop, the Deployment lookup, the readiness poll, the DNS loop, the end of a
// fan-out, a check's answer, a canary run).
// A fault is planted in each, in-process; without its guard, each of these either reaches the
// process (an uncaught exception or unhandled rejection, which fails the test) or leaves a
// component stopped for good. The built sidecar's side is in sidecar-faults.test.ts.
import t from 'tap';
import { Canary } from '../sidecar/canary/canary.js';
import { Checker, checkerSettings } from '../sidecar/check/checker.js';
import { ApiHealth } from '../sidecar/discovery/kubernetes/api-health.js';
import { Coalescer } from '../sidecar/discovery/kubernetes/coalescer.js';
import { ObjectCache } from '../sidecar/discovery/kubernetes/object-cache.js';
import { narrowPod, type PodLite } from '../sidecar/discovery/kubernetes/objects.js';
import { createKubernetesSource } from '../sidecar/discovery/kubernetes/kubernetes-source.js';
import { Reflector } from '../sidecar/discovery/kubernetes/reflector.js';
import { createDnsSource } from '../sidecar/discovery/dns-source.js';
import { PeerStore } from '../sidecar/discovery/peer-store.js';
import { createApiServer } from '../sidecar/http/api-server.js';
import { createOpsServer } from '../sidecar/http/ops-server.js';
import { PeerChannels } from '../sidecar/probe/peer-channels.js';
import { CUT, Probe, type CutReason } from '../sidecar/probe/probe.js';
import { watchTlsMaterial, type LoadedTls } from '../sidecar/probe/tls-material.js';
import { checkerFixture } from './support/checker-fixture.js';
import { captureLogger, configFrom, ManualClock, names, podJson, replicaSetJson } from './support/discovery-harness.js';
import { podList, refused, ScriptedApi } from './support/discovery-scripted-api.js';
import { closeServer, listenOnLoopback } from './support/listen.js';
import { http } from './support/net.js';
import { startReplicas } from './support/replica-server.js';
import { startSidecar } from './support/sidecar-app.js';
import { captureUnexpected } from './support/unexpected.js';
import { waitFor } from './support/wait.js';

const planted = (where: string): Error => new Error(`planted in ${where}`);

t.test('timer: the coalesced recomputation that throws is reported; the next event recomputes', async (t) => {
  const reports = captureUnexpected(t);
  const clock = new ManualClock();
  let runs = 0;
  const coalescer = new Coalescer(25, clock, () => {
    if (++runs === 1) throw planted('recompute');
  });
  coalescer.trigger();
  await clock.advance(25);
  t.match(reports, [{ source: 'timer', where: 'peer-set recomputation' }]);
  coalescer.trigger();
  await clock.advance(25);
  t.equal(runs, 2, 'triggered again, it runs again');
});

t.test('timer: a TLS rotation that cannot be put to use is reported and tried again next round', async (t) => {
  const reports = captureUnexpected(t);
  const rotated: LoadedTls = { options: { servername: 'peers.example' }, digest: 'new' };
  let attempts = 0;
  const failed: Error[] = [];
  const watcher = watchTlsMaterial(
    { caFile: undefined, certFile: undefined, keyFile: undefined, servername: 'peers.example' },
    { options: {}, digest: 'old' },
    1,
    () => {
      if (++attempts === 1) throw planted('the rotation');
    },
    (err) => failed.push(err),
    async () => rotated,
  );
  t.teardown(() => watcher.stop());
  await waitFor(() => attempts >= 2, 'the rotation tried again');
  t.match(reports, [{ source: 'timer', where: 'TLS files re-read', err: { message: 'planted in the rotation' } }]);
  t.same(failed, [], 'not mistaken for files that could not be read');
});

t.test("timer: a finished check's probe whose cut throws is reported; the others are cut all the same", async (t) => {
  const reports = captureUnexpected(t);
  const replicas = await startReplicas(2, { net: '127.0.53.', first: 30, port: 18091 });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  for (const r of replicas) r.behaviour = { kind: 'hang' };
  const cut = Probe.prototype.cut;
  let cuts = 0;
  Probe.prototype.cut = function (this: Probe, reason: CutReason): void {
    if (reason === CUT.deadline && ++cuts === 1) throw planted('a cut');
    cut.call(this, reason);
  };
  t.teardown(() => void (Probe.prototype.cut = cut));
  const fixture = checkerFixture({ SYNCER_HARD_TIMEOUT_MS: '300', SYNCER_PROBE_TIMEOUT_MS: '60000' });
  t.teardown(() => fixture.close());
  fixture.setPeers(replicas.map((r, i) => ({ name: `pod-${i + 1}`, host: r.host, port: r.port })));
  const admission = fixture.checker.check('tok', 'pod-0');
  if (admission.kind !== 'running') throw new Error(`expected a fan-out, got ${admission.kind}`);
  t.equal((await admission.result).verdict, 'Timeout');
  await waitFor(() => reports.length > 0 && replicas.some((r) => r.inFlight === 0), 'the report, and the other probe cut');
  t.match(reports, [{ source: 'timer', where: 'cutting the probes of a finished check', err: { message: 'planted in a cut' } }]);
  t.same(
    replicas.map((r) => r.inFlight).sort(),
    [0, 1],
    'the probe after the one that threw was cut (its request abandoned); only the throwing one is left, to its peer’s departure',
  );
});

t.test('event: a reader of the object cache that throws is reported; the objects are stored all the same', async (t) => {
  const reports = captureUnexpected(t);
  let calls = 0;
  const cache = new ObjectCache<PodLite>(() => {
    if (++calls === 1) throw planted('the reader');
  });
  const pod = narrowPod(podJson('a', { rv: '1' }));
  if (pod === undefined) throw new Error('pod fixture');
  cache.replace([pod]);
  t.match(reports, [{ source: 'event', where: 'a reader of the object cache' }]);
  t.same([...cache.items()].map((p) => p.metadata.name), ['a']);
  t.equal(cache.synced, true);
});

t.test('promise: the list-watch loop survives a bug in its own failure handling, and lists again', async (t) => {
  const reports = captureUnexpected(t);
  const api = new ScriptedApi();
  const clock = new ManualClock();
  const { log } = captureLogger();
  let failures = 0;
  const cache = new ObjectCache<PodLite>(() => undefined);
  const reflector = new Reflector<PodLite>({
    resource: 'pods',
    path: '/api/v1/namespaces/ns/pods',
    narrow: narrowPod,
    http: api,
    store: cache,
    health: {
      failed: () => {
        if (++failures === 1) throw planted('the failure report');
      },
      succeeded: () => undefined,
      answering: async () => undefined,
    },
    watchTimeoutS: 60,
    resyncMs: 3_600_000,
    clock,
    random: () => 0,
    log,
  });
  t.teardown(() => reflector.stop());
  api.listAnswers.push(refused(), podList('5', 'a'));
  reflector.start({});
  await clock.advance(0);
  t.match(reports, [{ source: 'promise', where: 'the pods list-watch loop' }]);
  t.equal(api.lists.length, 1, 'not retried in a tight loop');
  await clock.advance(125);
  t.equal(api.lists.length, 2, 'listed again after its backoff');
  t.same([...cache.items()].map((p) => p.metadata.name), ['a']);
  t.match(api.lastWatch().query, { resourceVersion: '5' }, 'and watching');
});

t.test("promise: a bug while finding this pod's Deployment is reported, and the lookup goes on", async (t) => {
  const reports = captureUnexpected(t);
  const api = new ScriptedApi();
  const clock = new ManualClock();
  const { log } = captureLogger();
  const store = new PeerStore();
  let failures = 0;
  store.observe({
    failed: () => {
      if (++failures === 1) throw planted('a failure observer');
    },
  });
  const config = configFrom({ SYNCER_DISCOVERY: 'kubernetes', POD_NAME: 'gw-1', POD_NAMESPACE: 'ns' });
  const source = createKubernetesSource({ config, store, log }, { http: api, clock, random: () => 0 });
  t.teardown(() => source.stop());
  api.listAnswers.push(refused(), podJson('gw-1', { rsUid: 'rs1' }), replicaSetJson('rs-rs1', 'rs1', 'd1', '1'));
  api.statusAnswers.push(200);
  source.start();
  await clock.advance(0);
  t.match(reports, [{ source: 'promise', where: "finding this pod's Deployment", err: { message: 'planted in a failure observer' } }]);
  await clock.advance(1_000);
  t.equal(source.deployment(), 'd', 'found on the next attempt');
});

t.test('promise: a readiness poll that breaks releases the loops waiting for it', async (t) => {
  const reports = captureUnexpected(t);
  const api = new ScriptedApi();
  /** A clock whose next timer cannot be set: the poll's first pause breaks. */
  class BreakingClock extends ManualClock {
    breakNext = false;
    override setTimeout(fn: () => void, ms: number): { cancel(): void } {
      if (this.breakNext) {
        this.breakNext = false;
        throw planted('the poll');
      }
      return super.setTimeout(fn, ms);
    }
  }
  const clock = new BreakingClock();
  const { log } = captureLogger();
  const health = new ApiHealth({ http: api, clock, random: () => 0, log, namespace: 'ns', store: { reportFailure: () => undefined }, recovered: () => undefined });
  t.teardown(() => health.stop());
  clock.breakNext = true;
  health.failed('pods', 'list', refused());
  let released = false;
  void health.answering(new AbortController().signal).then(() => (released = true));
  await clock.advance(0);
  t.match(reports, [{ source: 'promise', where: 'the API server readiness poll' }]);
  t.equal(released, true, 'the loops go on (their next failure starts a new poll)');
  health.failed('pods', 'list', refused());
  await clock.advance(125);
  t.same(api.statusCalls, ['/readyz'], 'a new failure starts a new poll');
});

t.test('promise: the DNS loop reports a bug on the way to the store, not a DNS failure, and resolves again', async (t) => {
  const reports = captureUnexpected(t);
  const config = configFrom({ SYNCER_DISCOVERY: 'dns', SYNCER_DNS_NAME: 'gw-headless', SYNCER_DNS_INTERVAL_MS: '1000' });
  const { log, lines } = captureLogger();
  const store = new PeerStore();
  let told = 0;
  store.observe({
    changed: () => {
      if (++told === 1) throw planted('an observer');
    },
  });
  const clock = new ManualClock();
  const answers = [['10.1.0.2'], ['10.1.0.3']];
  const source = createDnsSource({ config, store, log }, { resolver: async () => answers.shift() ?? [], clock });
  t.teardown(() => source.stop());
  source.start();
  await clock.advance(0);
  t.match(reports, [{ source: 'promise', where: 'the DNS discovery loop' }]);
  t.equal(store.discoveryState(), 'synced', 'not marked stale: the name resolved');
  t.notOk(lines.some((l) => /resolving gw-headless failed/.test(l.msg)), 'not logged as a DNS failure');
  await clock.advance(1_000);
  t.same(names(store.current()?.peers ?? []), ['10.1.0.3'], 'the next round published');
});

t.test('promise: the end of a fan-out (memo, observers) that throws is reported; the check and the in-flight count are whole', async (t) => {
  const reports = captureUnexpected(t);
  const config = configFrom({});
  const channels = new PeerChannels(config.probe, () => performance.now());
  t.teardown(() => channels.close());
  const checker = new Checker(checkerSettings(config), channels, { now: () => performance.now(), random: Math.random }, {
    fanOutDone: () => {
      throw planted('an observer');
    },
  });
  checker.peersChanged({ version: 1, peers: [] }, { added: [], removed: [] });
  const admission = checker.check('tok', 'pod-0');
  if (admission.kind !== 'running') throw new Error(`expected a fan-out, got ${admission.kind}`);
  t.equal((await admission.result).verdict, 'Synced');
  await waitFor(() => reports.length > 0, 'the report');
  t.match(reports, [{ source: 'promise', where: 'the end of a fan-out (memo, observers)' }]);
  t.equal(checker.waiting, 0);
});

t.test('promise: answering a check, when even the 500 path throws, is reported and the connection closed', async (t) => {
  const reports = captureUnexpected(t);
  const fixture = checkerFixture();
  t.teardown(() => fixture.close());
  fixture.setPeers([]);
  const { log } = captureLogger();
  log.error = () => {
    throw planted('the error log');
  };
  const server = createApiServer({
    checker: fixture.checker,
    hasPeers: () => true,
    observer: {
      wantsFingerprint: () => false,
      answered: () => {
        throw planted('an observer');
      },
      rejected: () => undefined,
    },
    log,
    defaultOrigin: 'pod-0',
    now: () => performance.now(),
    isDraining: () => false,
  });
  const url = await listenOnLoopback(server);
  t.teardown(() => closeServer(server));
  const res = await http(`${url}/v1/synced`, { headers: { 'X-Auth-Token': 'tok' } });
  t.equal(res.status, 200, 'the verdict was out before the observers ran');
  await waitFor(() => reports.length > 0, 'the report');
  t.match(reports, [{ source: 'promise', where: 'answering a check', err: { message: 'planted in the error log' } }]);
});

t.test('event: an ops answer that throws closes that connection, reaches nothing else; the next request is served', async (t) => {
  const reports = captureUnexpected(t);
  let current = 0;
  const server = createOpsServer({
    current: () => {
      if (++current === 1) throw planted('readiness');
      return { version: 1, peers: [] };
    },
    discoveryState: () => 'synced',
    renderMetrics: async () => '',
    metricsContentType: 'text/plain',
    isDraining: () => false,
    now: () => performance.now(),
  });
  const url = await listenOnLoopback(server);
  t.teardown(() => closeServer(server));
  const broken = await http(`${url}/readyz`).then(
    (r) => r.status,
    (err: NodeJS.ErrnoException) => err.code ?? err.message,
  );
  t.not(broken, 200, `no answer for that request (${String(broken)})`);
  t.match(reports, [{ source: 'event', where: 'an ops request' }]);
  t.equal((await http(`${url}/readyz`)).status, 200);
});

t.test('the sidecar logs and counts every report: a peer-set observer, a check observer that throws', async (t) => {
  const sidecar = await startSidecar({ SYNCER_DISCOVERY: 'static', SYNCER_PEERS: 'a=127.0.0.2:81' });
  t.teardown(() => sidecar.app.stop());
  sidecar.app.store.observe({
    changed: () => {
      throw planted('an observer');
    },
  });
  sidecar.app.store.publish([{ name: 'b', host: '127.0.0.3', port: 81 }]);
  const metrics = await sidecar.app.telemetry.metrics();
  t.match(metrics, /^syncer_unexpected_errors_total\{source="event"\} 1$/m);
  t.match(metrics, /^syncer_unexpected_errors_total\{source="timer"\} 0$/m, 'every source has its series from the start');
  t.same(names(sidecar.app.store.current()?.peers ?? []), ['b'], 'the set changed all the same');
  const line = sidecar.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['where'] === 'an observer of the peer set');
  t.match(line, { level: 50, source: 'event', err: { message: 'planted in an observer' }, msg: 'unexpected error, contained: the sidecar goes on with its last good state' });
  // An observer of a check's answer: the answer is out first, the error is counted.
  sidecar.app.telemetry.rejected = () => {
    throw planted('a rejection observer');
  };
  t.equal((await http(`${sidecar.apiUrl}/v1/synced`)).status, 400, 'a check without a token is answered 400');
  t.match(await sidecar.app.telemetry.metrics(), /^syncer_unexpected_errors_total\{source="event"\} 2$/m);
});

t.test('promise: a canary run that throws is reported, and the next run still comes', async (t) => {
  const reports = captureUnexpected(t);
  let runs = 0;
  const canary = new Canary(
    {
      intervalMs: 5,
      probeHeader: 'Authorization',
      probeHeaderPrefix: 'Bearer ',
      fanOut: { hardTimeoutMs: 50, retry: { delayMs: 5, backoff: 1.2, maxDelayMs: 10, jitter: 0, maxRetries: 0 }, retryWindowMs: 0 },
      expireMs: 1_000,
    },
    { targets: () => [], write: () => Promise.resolve({ ok: true }), now: () => performance.now(), wallClock: () => Date.now(), random: Math.random },
    {
      ran: () => {
        if (++runs === 1) throw planted('a canary run');
      },
    },
  );
  t.teardown(() => canary.stop());
  canary.start();
  await waitFor(() => runs >= 2 || undefined, 'a second canary run', { timeoutMs: 10_000 });
  t.match(reports, [{ source: 'promise', where: 'a canary run' }], 'the first run reported its bug');
  t.equal(reports.length, 1, 'and only that one');
});
