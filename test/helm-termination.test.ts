// Rollouts and node drains without 503s: a pod of the chart (the chart's nginx config on real
// nginx, the real sidecar; packaging/nginx-pods.ts) is terminated the way the kubelet does
// (packaging/pod-termination.ts: preStop hooks, then SIGTERM, within the grace period) while
// clients keep sending bearer-token requests through wait-strict. Kubernetes takes a terminating
// pod out of the Service endpoints at the same moment, but clients and proxies keep sending to
// it for a while: that is the window nginx's preStop sleep serves, and the one played here.
//
// Each pod has its own network namespace (support/pod-network.ts) and runs the chart's defaults:
// probes over mutual TLS with the release's generated certificates. Three pods share one
// always-up peer (pod-b), which holds every token:
//  - the chart as it is: the sidecar's preStop outlasts nginx's serving window → no 503;
//  - control: the same pod rendered with syncer.preStopSeconds=0 (the sidecar gets SIGTERM at
//    once, as before the chart had the hook) → 503s, which proves the test sees the failure;
//  - a native sidecar (Kubernetes stops it after nginx) → no 503.
import t, { type Test } from 'tap';
import { performance } from 'node:perf_hooks';
import { helmLint } from './packaging/helm.js';
import { podsMissing, startPods, type SimPod } from './packaging/nginx-pods.js';
import { terminatePod, type RunningContainer, type Termination } from './packaging/pod-termination.js';
import { http } from './support/net.js';
import { PodNetwork } from './support/pod-network.js';
import { requirePart } from './support/required.js';

/** nginx's preStop sleep in these pods (chart default 5): shorter, so the test is quick. */
const NGINX_PRESTOP_S = 2;
const CLIENTS = 4;

interface Answer {
  readonly status: number;
  readonly tokenStatus: string | undefined;
  /** performance.now() when it arrived. */
  readonly at: number;
}

interface Traffic {
  readonly answers: Answer[];
  /** Connection errors by code (ECONNREFUSED once nginx stopped listening). */
  readonly failures: Map<string, number>;
  /** performance.now() of each connection error. */
  readonly failedAt: number[];
}

/** CLIENTS loops of sequential requests on fresh connections, until nginx refuses connections or `done` settles. */
function keepRequesting(base: string, token: string, done: Promise<unknown>): Promise<Traffic> {
  const traffic: Traffic = { answers: [], failures: new Map(), failedAt: [] };
  let over = false;
  void done.finally(() => (over = true));
  const loop = async (): Promise<void> => {
    while (!over) {
      try {
        const res = await http(`${base}/`, { headers: { authorization: `Bearer ${token}` }, timeoutMs: 10_000 });
        const tokenStatus = res.headers['x-token-status'];
        traffic.answers.push({ status: res.status, tokenStatus: Array.isArray(tokenStatus) ? tokenStatus.join(',') : tokenStatus, at: performance.now() });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
        traffic.failures.set(code, (traffic.failures.get(code) ?? 0) + 1);
        traffic.failedAt.push(performance.now());
        if (code === 'ECONNREFUSED') return;
      }
    }
  };
  return Promise.all(Array.from({ length: CLIENTS }, loop)).then(() => traffic);
}

interface Run {
  readonly termination: Termination;
  readonly traffic: Traffic;
  /** When each answer arrived, in ms since the termination began (the termination's clock). */
  answeredAt(a: Answer): number;
  /** When each connection error happened, on the same clock. */
  readonly failedAtMs: number[];
}

/** Terminates `pod` (its containers as given) while clients send `token` through wait-strict. */
async function terminateUnderTraffic(pod: SimPod, token: string, containers: readonly RunningContainer[]): Promise<Run> {
  const warm = await http(`${pod.base}/`, { headers: { authorization: `Bearer ${token}` } });
  if (warm.status !== 200) throw new Error(`${pod.name} does not serve the token before its termination: HTTP ${warm.status}`);
  const terminated = terminatePod(containers, pod.gracePeriodSeconds);
  const traffic = keepRequesting(pod.base, token, terminated);
  const termination = await terminated;
  const done = await traffic;
  return { termination, traffic: done, answeredAt: (a) => a.at - termination.startedAt, failedAtMs: done.failedAt.map((at) => at - termination.startedAt) };
}

function summary(run: Run): string {
  const byStatus = new Map<string, number>();
  for (const a of run.traffic.answers) byStatus.set(`${a.status} ${a.tokenStatus ?? '-'}`, (byStatus.get(`${a.status} ${a.tokenStatus ?? '-'}`) ?? 0) + 1);
  const events = run.termination.events.map((e) => `${e.container} ${e.step} @${Math.round(e.atMs)}ms${e.detail === undefined ? '' : ` (${e.detail})`}`);
  return `answers: ${JSON.stringify(Object.fromEntries(byStatus))}; connection errors: ${JSON.stringify(Object.fromEntries(run.traffic.failures))}; ${events.join(', ')}`;
}

/**
 * What the kubelet would see of nginx's shutdown: its preStop hook ended by itself with 0 (the
 * hook runs in the container's PID namespace, so one still running when nginx exits is killed
 * and the kubelet records "PreStopHook failed"), nginx quit gracefully on the stop signal (the
 * start script's SIGQUIT; SIGTERM would be its fast shutdown) and cut no request.
 */
function cleanShutdown(t: Test, run: Run, pod: SimPod): void {
  t.same(
    run.termination.events.filter((e) => e.step === 'preStop ended').map((e) => [e.container, e.detail]),
    [
      ['nginx', 'exec exited with code 0'],
      ...(pod.containers.some((c) => c.native) ? [] : [['syncer', 'exec exited with code 0']]),
    ],
    'every preStop hook ends by itself, with 0: no FailedPreStopHook',
  );
  t.ok(run.termination.at('nginx', 'preStop ended') < run.termination.at('nginx', 'SIGTERM'), "nginx's hook ended before its stop signal");
  const log = pod.nginx.output();
  t.match(log, /signal 3 \(SIGQUIT\) received/, 'nginx got SIGQUIT, its graceful quit');
  t.notMatch(log, /signal 15 \(SIGTERM\) received/, 'never SIGTERM, its fast shutdown');
  // A connection that was still in nginx's accept queue when its graceful quit closed the listener
  // is reset by the kernel (ECONNRESET): never read, so never answered, like a refusal. Either is
  // fine once nginx was told to stop; a connection error before that would be a cut request.
  t.same(
    [...run.traffic.failures.keys()].filter((code) => code !== 'ECONNREFUSED' && code !== 'ECONNRESET'),
    [],
    'no request was cut: the only connection errors are refusals (or resets of never-accepted connections)',
  );
  const firstError = Math.min(...run.failedAtMs); // Infinity when there was none
  t.ok(firstError >= run.termination.at('nginx', 'SIGTERM'), `connection errors only once nginx was told to stop (${run.failedAtMs.length === 0 ? 'none' : `first at ${Math.round(firstError)} ms`})`);
}

t.test('terminating a pod under wait-strict traffic: the sidecar outlives nginx serving', async (t) => {
  requirePart(podsMissing());
  const network = await PodNetwork.create('127.0.101');
  const release = await startPods(network, [
    { name: 'pod-current', peers: ['pod-current', 'pod-b'], preStopSleepSeconds: NGINX_PRESTOP_S },
    { name: 'pod-unordered', peers: ['pod-unordered', 'pod-b'], preStopSleepSeconds: NGINX_PRESTOP_S, syncerPreStopSeconds: 0 },
    { name: 'pod-native', peers: ['pod-native', 'pod-b'], preStopSleepSeconds: NGINX_PRESTOP_S, nativeSidecar: true },
    { name: 'pod-b', peers: ['pod-b'] },
  ]).catch(async (err: unknown) => {
    await network.remove();
    throw err;
  });
  t.teardown(async () => {
    await release.stop();
    await network.remove();
  });
  const [current, unordered, native, peer] = release.pods;
  if (!current || !unordered || !native || !peer) throw new Error('pods not started');

  for (const pod of [current, unordered, native, peer]) {
    const lint = await helmLint({ values: pod.values });
    t.equal(lint.code, 0, `${pod.name}'s values: helm lint --strict clean ${lint.code === 0 ? '' : lint.stdout}`);
  }

  const token = `tok-${Date.now()}`;
  for (const pod of [current, unordered, native, peer]) t.equal(await pod.postToken(token), 201, `token on ${pod.name}`);

  await t.test('the chart as rendered: the sidecar drains only after nginx stopped sending checks', async (t) => {
    const syncer = current.containers.find((c) => c.spec.name === 'syncer');
    t.same(syncer?.spec.lifecycle?.preStop?.exec?.command, ['sleep', String(NGINX_PRESTOP_S + 2)], 'rendered preStop: nginx.preStopSleepSeconds + 2');
    const run = await terminateUnderTraffic(current, token, current.containers);
    t.comment(summary(run));
    const { answers, failures } = run.traffic;
    t.ok(answers.length >= CLIENTS, `clients were answered while the pod terminated (${answers.length})`);
    t.same(
      answers.filter((a) => a.status !== 200 || a.tokenStatus !== 'Synced'),
      [],
      'every answer is 200 Synced: no 503 from the shutdown',
    );
    t.ok((failures.get('ECONNREFUSED') ?? 0) > 0, 'the clients kept going until nginx stopped listening');
    const lastAnswer = Math.max(...answers.map(run.answeredAt));
    const sigterm = run.termination.at('syncer', 'SIGTERM');
    t.ok(lastAnswer < sigterm, `nginx's last answer (${Math.round(lastAnswer)} ms) came before the sidecar's SIGTERM (${Math.round(sigterm)} ms)`);
    t.ok(run.termination.at('nginx', 'exited') < sigterm, 'nginx had exited when the sidecar was told to stop');
    t.same(
      run.termination.events.filter((e) => e.step === 'exited').map((e) => [e.container, e.detail]),
      [
        ['nginx', 'exited with code 0'],
        ['syncer', 'exited with code 0'],
      ],
      'both exit cleanly, nginx first',
    );
    cleanShutdown(t, run, current);
  });

  await t.test('control: the sidecar preStop at 0 s (SIGTERM at once, the chart before), the same termination answers 503', async (t) => {
    const syncer = unordered.containers.find((c) => c.spec.name === 'syncer');
    t.same(syncer?.spec.lifecycle?.preStop?.exec?.command, ['sleep', '0'], 'rendered preStop: syncer.preStopSeconds=0');
    const run = await terminateUnderTraffic(unordered, token, unordered.containers);
    t.comment(summary(run));
    const refused = run.traffic.answers.filter((a) => a.status === 503);
    t.ok(refused.length > 0, `503s while nginx kept serving (${refused.length} of ${run.traffic.answers.length})`);
    t.ok(
      refused.every((a) => a.tokenStatus === 'Unavailable'),
      'each says the sidecar was unavailable (X-Token-Status: Unavailable), not that the token was missing',
    );
    t.ok(Math.min(...refused.map(run.answeredAt)) > run.termination.at('syncer', 'SIGTERM'), 'they start after the sidecar got SIGTERM');
  });

  await t.test('native sidecar: Kubernetes stops it after nginx, no preStop needed', async (t) => {
    const syncer = native.containers.find((c) => c.spec.name === 'syncer');
    t.equal(syncer?.native, true, 'an initContainer with restartPolicy Always');
    t.equal(syncer?.spec.lifecycle, undefined, 'no preStop rendered for a native sidecar');
    const run = await terminateUnderTraffic(native, token, native.containers);
    t.comment(summary(run));
    t.ok(run.traffic.answers.length >= CLIENTS, 'clients were answered while the pod terminated');
    t.same(
      run.traffic.answers.filter((a) => a.status !== 200 || a.tokenStatus !== 'Synced'),
      [],
      'every answer is 200 Synced',
    );
    t.ok(run.termination.at('nginx', 'exited') <= run.termination.at('syncer', 'SIGTERM'), 'the sidecar is stopped after nginx exited');
    cleanShutdown(t, run, native);
  });
});
