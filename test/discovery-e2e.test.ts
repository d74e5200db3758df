// End to end: a real control plane, the BUILT sidecar (its bundle, as shipped) in kubernetes
// mode with the roles/ ServiceAccount, and small HTTP servers standing in for nginx on the pod IPs
// the fake kubelet assigned (127.0.5.x, one port). /v1/synced verdicts follow replicas as they
// come and go, and keep being answered from the last set while the API server is down;
// `apigw-syncer peers` prints the same view.
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { KubeConfig } from '@kubernetes/client-node';
import { startControlPlane } from './support/control-plane.js';
import { freePort } from './support/net.js';
import { deadline, waitFor } from './support/wait.js';
import { createDeployment, getAs, isReady, markForScaleDown, pods, scaleTo, setupCluster, waitForReadyPods } from './support/discovery-cluster.js';
import { summary } from './support/discovery-harness.js';
import { ReplicaServer } from './support/replica-server.js';
import { runSidecarCommand, startSidecarProcess, type SidecarProcess } from './support/sidecar-process.js';

const NS = 'apigw';
const DEP = 'gw';
const PREFIX = '127.0.5.';
const TOKEN = 'tok-e2e-1';

interface CheckAnswer {
  readonly status: number;
  readonly tokenStatus: string | undefined;
  readonly verdict: string | undefined;
  readonly peers: { name: string; outcome: string }[];
}

/** A check of TOKEN with `origin` as the asking pod. */
async function check(sidecar: SidecarProcess, origin: string): Promise<CheckAnswer> {
  const r = await sidecar.check(TOKEN, origin);
  if (r.body.peers === undefined) throw new Error(`no peers in the answer (${r.status}): ${JSON.stringify(r.body)}`);
  return { status: r.status, tokenStatus: r.tokenStatus, verdict: r.body.verdict, peers: r.body.peers };
}

t.test('built sidecar in kubernetes mode: verdicts follow replicas', async (t) => {
  const began = Date.now();
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const c = await setupCluster(cp, NS, PREFIX);
  t.teardown(() => c.kubelet.stop());
  await createDeployment(c, DEP, 3);
  const initial = await waitForReadyPods(c, DEP, 3);
  const podNames = initial.map((p) => p.metadata?.name ?? '').sort();
  const own = podNames[0] ?? '';
  const other = podNames[1] ?? '';

  // nginx stand-ins on every pod IP, one port, like pods; all hold the token.
  const probePort = await freePort();
  const replicas = new Map<string, ReplicaServer>();
  const startReplica = async (pod: string, holdsToken: boolean): Promise<void> => {
    const ip = c.kubelet.ipOf(pod);
    if (ip === undefined) throw new Error(`no IP for ${pod}`);
    const r = await ReplicaServer.start({ host: ip, port: probePort });
    if (holdsToken) r.give(TOKEN);
    replicas.set(pod, r);
  };
  for (const p of podNames) await startReplica(p, true);
  t.teardown(() => Promise.all([...replicas.values()].map((r) => r.close())));

  const env = {
    KUBECONFIG: c.sidecarKubeconfig,
    SYNCER_DISCOVERY: 'kubernetes',
    POD_NAME: own,
    POD_NAMESPACE: NS,
    SYNCER_PROBE_PORT: String(probePort),
    SYNCER_MAX_RETRIES: '2',
    SYNCER_RETRY_DELAY_MS: '10',
    SYNCER_HARD_TIMEOUT_MS: '1500',
    // Verdicts must follow the replicas' stores check by check, also when only a store changes:
    // no Synced memo here (its own tests are in check-memo.test.ts).
    SYNCER_SYNCED_TTL_MS: '0',
    LOG_LEVEL: 'info',
  };
  // Started now, checked at the end: a pod that does not exist fails clearly within the deadline.
  const failingPeers = runSidecarCommand(['peers'], { ...env, POD_NAME: 'no-such-pod' });

  // The first peer set within 20 s of the launch (listening is on the way there).
  const firstSetDeadline = deadline(20_000);
  const launched = performance.now();
  const sidecar = await startSidecarProcess(env, { timeoutMs: firstSetDeadline.remainingMs() });
  t.teardown(() => sidecar.stop());
  await waitFor(() => sidecar.child.exitCode === null && sidecar.lines.some((l) => l['msg'] === 'peer set changed'), 'the first peer set', {
    timeoutMs: firstSetDeadline.remainingMs(),
    context: () => `sidecar stderr: ${sidecar.stderr()}\nlogs: ${sidecar.lines.map((l) => JSON.stringify(l)).join('\n')}`,
  });
  t.comment(`built sidecar: process start → first peer set ${(performance.now() - launched).toFixed(0)} ms`);
  const listening = sidecar.lines.find((l) => l['msg'] === 'listening');
  const firstSet = sidecar.lines.find((l) => l['msg'] === 'peer set changed');
  t.comment(`built sidecar: listening → first peer set ${Number(firstSet?.['time']) - Number(listening?.['time'])} ms (its own log timestamps)`);
  t.equal((await fetch(`${sidecar.opsUrl}/readyz`).catch(() => ({ status: 0 }))).status, 200, 'ready after the first set');

  const changes: number[] = [];
  /** Waits for the sidecar's own 'peer set changed' log line satisfying want (no polling of the API). */
  const nextSet = async (want: (peers: string[]) => boolean, what: string, since: number): Promise<void> => {
    const start = performance.now();
    await waitFor(() => sidecar.lines.slice(since).some((l) => l['msg'] === 'peer set changed' && want(l['peers'] as string[])), what, { timeoutMs: 30_000 });
    changes.push(performance.now() - start);
  };

  await t.test('all replicas hold the token: Synced, origin excluded', async (t) => {
    const a = await check(sidecar, own);
    t.equal(a.status, 200);
    t.equal(a.tokenStatus, 'Synced');
    t.equal(a.verdict, 'Synced');
    t.same(a.peers.map((p) => p.name).sort(), podNames.filter((n) => n !== own), 'this pod is the origin: not probed');
    const b = await check(sidecar, other);
    t.same(b.peers.map((p) => p.name).sort(), podNames.filter((n) => n !== other), 'another origin: that pod is excluded, this one probed');
  });

  await t.test('a new replica without the token: Partialy; removing it: Synced again', async (t) => {
    const mark = sidecar.lines.length;
    await scaleTo(c, DEP, 4);
    const fourth = await waitFor(
      async () => (await pods(c, `app=${DEP}`)).filter(isReady).map((p) => p.metadata?.name ?? '').find((n) => !podNames.includes(n)),
      'the 4th ready pod',
      { timeoutMs: 30_000, intervalMs: 50, retryOnError: true },
    );
    await startReplica(fourth, false);
    await nextSet((p) => p.includes(fourth), 'the sidecar to add the 4th replica', mark);
    const a = await check(sidecar, own);
    t.equal(a.tokenStatus, 'Partialy', '2 of 3 peers hold the token');
    t.match(a.peers.find((p) => p.name === fourth), { outcome: 'missing' });

    const mark2 = sidecar.lines.length;
    await markForScaleDown(c, fourth);
    await scaleTo(c, DEP, 3);
    await nextSet((p) => !p.includes(fourth) && p.length === 3, 'the sidecar to drop the 4th replica', mark2);
    const b = await check(sidecar, own);
    t.equal(b.tokenStatus, 'Synced');
    t.same(b.peers.map((p) => p.name).sort(), podNames.filter((n) => n !== own));
  });

  await t.test('two replicas without the token (of two peers): NotSynced', async (t) => {
    // Both peers lose the token: restart their stand-ins empty.
    for (const p of podNames.filter((n) => n !== own)) {
      await replicas.get(p)?.close();
      await startReplica(p, false);
    }
    const a = await check(sidecar, own);
    t.equal(a.tokenStatus, 'NotSynced');
    for (const p of podNames.filter((n) => n !== own)) replicas.get(p)?.give(TOKEN);
    t.equal((await check(sidecar, own)).tokenStatus, 'Synced');
  });

  await t.test('an unready replica is no longer probed', async (t) => {
    const mark = sidecar.lines.length;
    await c.kubelet.setReady(other, false);
    await nextSet((p) => !p.includes(other), 'the sidecar to drop the unready replica', mark);
    const a = await check(sidecar, own);
    t.notOk(a.peers.some((p) => p.name === other));
    const mark2 = sidecar.lines.length;
    await c.kubelet.setReady(other, true);
    await nextSet((p) => p.includes(other), 'the sidecar to add it back', mark2);
  });

  await t.test('`apigw-syncer peers` prints the table and exits 0', async (t) => {
    const r = await runSidecarCommand(['peers'], env);
    t.equal(r.exit.code, 0, r.stderr);
    t.match(r.stdout, new RegExp(`Deployment ${DEP} in namespace ${NS}, scope revision`));
    t.match(r.stdout, /NAME\s+IP\s+READY\s+REPLICASET\s+REVISION\s+INCLUDED/);
    for (const p of podNames) t.match(r.stdout, new RegExp(`${p}\\s+127\\.0\\.5\\.\\d+\\s+yes\\s+\\S+\\s+1\\s+peer`));
    t.match(r.stdout, /3 peer\(s\)/);
    t.comment(`peers output:\n${r.stdout}`);
    const bad = await failingPeers;
    t.equal(bad.exit.code, 1);
    t.match(bad.stdout, /error: no peer set within 10 s/);
    t.match(bad.stdout, /pod no-such-pod not found in namespace apigw/);
  });

  // Last: the `peers` run started at the top must have ended before the API server goes down.
  await t.test('API server down: checks answered from the last set while stale; recovered soon after it answers', async (t) => {
    const mark = sidecar.lines.length;
    const since = (msg: string) => (): boolean => sidecar.lines.slice(mark).some((l) => l['msg'] === msg);
    await cp.stopApiServer();
    await waitFor(since('discovery is stale; serving the last known peer set'), 'the sidecar to say discovery is stale', { timeoutMs: 20_000 });
    const a = await check(sidecar, own);
    t.equal(a.tokenStatus, 'Synced', 'a check is answered while the API server is down');
    t.same(a.peers.map((p) => p.name).sort(), podNames.filter((n) => n !== own), 'from the last peer set');
    t.equal((await fetch(`${sidecar.opsUrl}/readyz`)).status, 200, 'still ready: stale is not unready');
    t.match(await (await fetch(`${sidecar.opsUrl}/metrics`)).text(), /syncer_discovery_state\{state="stale"\} 1/);

    const kc = new KubeConfig();
    kc.loadFromFile(c.sidecarKubeconfig);
    const started = cp.startApiServer();
    // "Answering" is the first 200 of the test's own /readyz poll (wall clock, like the log's time).
    const answering = await waitFor(async () => ((await getAs(kc, '/readyz')) === 200 ? Date.now() : undefined), 'the API server answering /readyz', {
      timeoutMs: 90_000,
      intervalMs: 20,
      retryOnError: true,
    });
    await waitFor(since('discovery recovered'), 'the sidecar to say discovery recovered', { timeoutMs: 30_000 });
    await started;
    const recovered = sidecar.lines.slice(mark).find((l) => l['msg'] === 'discovery recovered');
    t.comment(`built sidecar: API server answering → 'discovery recovered' ${Number(recovered?.['time']) - answering} ms (its log timestamp)`);
    t.equal((await check(sidecar, own)).tokenStatus, 'Synced', 'checks carry on after recovery');
  });

  t.comment(`latency API change → sidecar peer set (built program, from its logs): ${summary(changes)}`);
  await sidecar.stop();
  t.equal(sidecar.child.exitCode, 0, 'clean exit on SIGTERM');
  t.notOk(sidecar.lines.some((l) => Number(l['level']) >= 50), 'no error logs');
  t.comment(`whole file ${Date.now() - began} ms`);
});
