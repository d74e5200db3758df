// The canary end to end on real processes, with no client traffic: 4 apigw "pods", each =
// open-source nginx with the shipped snippets unchanged (probe server on 127.0.124.(10+i), the
// token API on loopback) + the built sidecar with the canary on. Each sidecar's canary URL is a
// relay in front of its own pod's token API that plays zone_sync (test/support/keyvals-relay.ts
// + ReplicationSim): the key is written to the pod's own nginx (its 201 is the answer), then to
// every other pod's nginx — except a pod whose zone_sync is broken. One pod stops receiving
// writes: every other pod's canary names it, by the first run whose write came after the break
// (within two intervals; the time is measured and printed), while its peers' figures stay clean
// and nothing counts as a check; its own canary, whose writes still go out, stays whole. Then it
// receives writes again and every canary is whole again.
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { KeyvalsRelay } from './support/keyvals-relay.js';
import { http } from './support/net.js';
import { nginxMissing, removePodDir, startNginxPod, type NginxPod } from './support/nginx.js';
import { describeExit } from './support/processes.js';
import { ReplicationSim, type Lag } from './support/replication-sim.js';
import { requirePart } from './support/required.js';
import { MAIN_JS, startSidecarProcess, type SidecarProcess } from './support/sidecar-process.js';
import { deadline, waitFor } from './support/wait.js';

const PODS = 4;
const PORT = 18124;
const PROBE_PORT = 18125;
const INTERVAL_MS = 2_000;
const CANARY_TIMEOUT_MS = 1_000;
/** The pod whose zone_sync stops delivering to it. */
const BROKEN = 2;

const podName = (i: number): string => `apigw-${i}`;
const podHost = (i: number): string => `127.0.124.${10 + i}`;
const peersEnv = Array.from({ length: PODS }, (_, i) => `${podName(i)}=${podHost(i)}:${PROBE_PORT}`).join(',');

interface CanaryStatus {
  readonly result: string;
  readonly startedAt: string;
  readonly endedAt: string;
  readonly notArrived: ReadonlyArray<{ name: string; result: string }>;
}

interface Pod {
  readonly i: number;
  readonly nginx: NginxPod;
  readonly relay: KeyvalsRelay;
  readonly sim: ReplicationSim;
  readonly sidecar: SidecarProcess;
}

/** Pods that receive no replicated writes (zone_sync broken towards them). */
const cutOff = new Set<string>();
const lags = (): Record<string, Lag> => Object.fromEntries([...cutOff].map((name) => [name, 'never' as const]));

async function canaryOf(pod: Pod): Promise<CanaryStatus | undefined> {
  const res = await http(`${pod.sidecar.opsUrl}/readyz`);
  if (res.status !== 200) throw new Error(`${podName(pod.i)} /readyz: ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { canary?: CanaryStatus }).canary;
}

async function metricsOf(pod: Pod): Promise<string> {
  return (await http(`${pod.sidecar.opsUrl}/metrics`)).body;
}

t.test('a replica that stops receiving writes is named by the canary within two intervals; its peers stay clean', async (t) => {
  requirePart(nginxMissing() ?? (existsSync(MAIN_JS) ? undefined : `${MAIN_JS} is missing: run \`npm run build\``));
  const nginxes: NginxPod[] = [];
  const relays: KeyvalsRelay[] = [];
  const sidecars: SidecarProcess[] = [];
  const sims: ReplicationSim[] = [];
  t.teardown(async () => {
    sims.forEach((s) => s.stop());
    await Promise.all(sidecars.map((s) => s.stop()));
    await Promise.all(relays.map((r) => r.close()));
    await Promise.all(nginxes.map(async (n) => {
      await n.stop();
      await removePodDir(n);
    }));
  });

  // nginx first (every sim needs every pod's token API), then relays and sidecars.
  const up = performance.now();
  for (let i = 0; i < PODS; i++) {
    nginxes.push(await startNginxPod({ name: podName(i), host: podHost(i), port: PORT, probePort: PROBE_PORT, sidecarAddr: '127.0.0.1:1' }));
  }
  const ready = deadline(90_000);
  const pods = await Promise.all(
    nginxes.map(async (nginx, i): Promise<Pod> => {
      const others = nginxes.filter((_, j) => j !== i).map((n) => ({ name: n.name, apiUrl: n.apiUrl }));
      const sim = new ReplicationSim({ name: nginx.name, apiUrl: nginx.apiUrl }, others);
      sims.push(sim);
      const relay = await KeyvalsRelay.start(async ({ key, value, expireMs }) => {
        await sim.issue(key, lags(), value, expireMs);
        return 201;
      });
      relays.push(relay);
      const sidecar = await startSidecarProcess(
        {
          POD_NAME: podName(i),
          POD_NAMESPACE: 'e2e',
          POD_IP: podHost(i),
          SYNCER_DISCOVERY: 'static',
          SYNCER_PEERS: peersEnv,
          SYNCER_CANARY_INTERVAL_MS: String(INTERVAL_MS),
          SYNCER_CANARY_TIMEOUT_MS: String(CANARY_TIMEOUT_MS),
          SYNCER_CANARY_URL: relay.url,
          LOG_LEVEL: 'info',
        },
        { timeoutMs: ready.remainingMs() },
      );
      sidecars.push(sidecar);
      return { i, nginx, relay, sim, sidecar };
    }),
  );
  const abortIf = () => {
    const dead = pods.find((p) => p.sidecar.process.exitStatus() !== undefined);
    return dead === undefined ? undefined : new Error(`sidecar ${podName(dead.i)} ${describeExit(dead.sidecar.process.exitStatus()!)}: ${dead.sidecar.output()}`);
  };
  const everyCanary = (what: string, ok: (c: CanaryStatus, pod: Pod) => boolean, timeoutMs = ready.remainingMs()) =>
    waitFor(async () => {
      const all = await Promise.all(pods.map(canaryOf));
      return all.every((c, i) => c !== undefined && ok(c, pods[i]!));
    }, what, { timeoutMs, intervalMs: 50, abortIf });

  await everyCanary('every canary whole', (c) => c.result === 'synced');
  t.comment(`${PODS} pods (nginx + sidecar, canary every ${INTERVAL_MS} ms) whole in ${Math.round(performance.now() - up)} ms`);

  // zone_sync stops delivering to apigw-2. Each other pod's runs are followed from here: the
  // runs that end after the cut, in order, until one names apigw-2.
  const watchers = pods.filter((p) => p.i !== BROKEN);
  const before = await Promise.all(watchers.map(canaryOf));
  cutOff.add(podName(BROKEN));
  const cutAt = Date.now();
  const detections = await Promise.all(
    watchers.map(async (pod, k) => {
      const seen: CanaryStatus[] = [];
      let last = before[k]!.endedAt;
      const named = await waitFor(async () => {
        const c = (await canaryOf(pod))!;
        if (c.endedAt !== last) {
          seen.push(c);
          last = c.endedAt;
        }
        return seen.find((r) => r.notArrived.some((p) => p.name === podName(BROKEN)));
      }, `${podName(pod.i)}'s canary to name ${podName(BROKEN)}`, { timeoutMs: 10 * INTERVAL_MS, intervalMs: 20, abortIf });
      return { pod, named, runsAfterCut: seen.indexOf(named) + 1, ms: Date.parse(named.endedAt) - cutAt };
    }),
  );
  for (const d of detections) {
    t.comment(`${podName(d.pod.i)}: ${podName(BROKEN)} named by run ${d.runsAfterCut} after the cut, ${d.ms} ms after it (interval ${INTERVAL_MS} ms, timeout ${CANARY_TIMEOUT_MS} ms)`);
    t.ok(d.runsAfterCut <= 2, `${podName(d.pod.i)}: named by one of the first two runs to end after the cut (the first may have written before it)`);
    t.same(d.named.notArrived, [{ name: podName(BROKEN), result: 'missing' }], `${podName(d.pod.i)}: exactly apigw-2, missing (its probe server answers 401)`);
    t.equal(d.named.result, 'incomplete');
  }
  t.comment(`detection time: max ${Math.max(...detections.map((d) => d.ms))} ms, within two intervals = ${2 * INTERVAL_MS} ms`);

  // Its peers' figures stay clean; the broken pod's own canary (its writes still go out) is whole.
  const broken = pods[BROKEN]!;
  const own = await waitFor(async () => {
    const c = (await canaryOf(broken))!;
    return Date.parse(c.startedAt) > cutAt && c;
  }, "a run of apigw-2's own after the cut", { timeoutMs: 5 * INTERVAL_MS, abortIf });
  t.match(own, { result: 'synced', notArrived: [] }, "apigw-2's own key reaches everyone");
  for (const pod of watchers) {
    const text = await metricsOf(pod);
    for (const peer of pods.filter((p) => p.i !== pod.i && p.i !== BROKEN)) {
      for (const result of ['missing', 'error', 'timeout']) {
        t.match(text, new RegExp(`^syncer_canary_peer_results_total\\{peer="${podName(peer.i)}",result="${result}"\\} 0$`, 'm'), `${podName(pod.i)} → ${podName(peer.i)}: no ${result}`);
      }
      t.match(text, new RegExp(`^syncer_canary_peer_delay_seconds\\{peer="${podName(peer.i)}"\\} 0\\.\\d+`, 'm'), `${podName(pod.i)} → ${podName(peer.i)}: arrived, within a second`);
    }
    t.match(text, new RegExp(`^syncer_canary_peer_results_total\\{peer="${podName(BROKEN)}",result="missing"\\} [1-9]`, 'm'), `${podName(pod.i)}: ${podName(BROKEN)} counted missing`);
    t.notMatch(text, /^syncer_checks_total\{/m, `${podName(pod.i)}: no check counted`);
    t.notMatch(text, /^syncer_peer_check_outcomes_total\{.*\} [1-9]/m, `${podName(pod.i)}: no per-peer check figure moved`);
    t.match(text, /^syncer_canary_runs_total\{result="write_failed"\} 0$/m, `${podName(pod.i)}: every write taken by its pod's nginx`);
  }

  // zone_sync delivers again: every canary is whole again.
  cutOff.clear();
  const healedAt = Date.now();
  await everyCanary('every canary whole again', (c) => c.result === 'synced' && Date.parse(c.startedAt) > healedAt, 5 * INTERVAL_MS);
  t.pass('replication back: every canary reaches every peer again');
});
