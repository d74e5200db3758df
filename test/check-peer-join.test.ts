// A joined check covers the peer set of its own time. The built sidecar in kubernetes mode against
// a real control plane, real nginx pods: a check is in flight, waiting for two peers to receive
// the token, when a third replica that never gets it turns Ready and joins the peer set. An
// identical check that arrives then must not share the fan-out begun before the join (which never
// asks the new replica) and must not be answered Synced; neither may the memo answer it from a
// verdict begun before the join.
import t from 'tap';
import { startControlPlane } from './support/control-plane.js';
import { createDeployment, setupCluster, waitForReadyPods } from './support/discovery-cluster.js';
import { freePort } from './support/net.js';
import { nginxMissing, removePodDir, startNginxPod, writeToken, type NginxPod } from './support/nginx.js';
import { requirePart } from './support/required.js';
import { startSidecarProcess, type SidecarProcess } from './support/sidecar-process.js';
import { waitFor } from './support/wait.js';

const NS = 'apigw';
const DEP = 'gw';

async function inFlight(s: SidecarProcess): Promise<number> {
  const text = await (await fetch(`${s.opsUrl}/metrics`)).text();
  return Number(/^syncer_checks_in_flight (\d+)$/m.exec(text)?.[1]);
}

t.test('a replica joins while a check is in flight: an identical check then is not Synced', async (t) => {
  requirePart(nginxMissing());
  const [probePort, clientPort] = [await freePort(), await freePort()];
  const nginx = new Map<string, NginxPod>();
  t.teardown(() => Promise.all([...nginx.values()].map(async (p) => (await p.stop(), await removePodDir(p)))));
  // Each pod's nginx runs before the kubelet reports it running, as its container would.
  const beforeRunning = async ({ name, ip }: { name: string; ip: string }): Promise<void> => {
    if (nginx.has(name)) return;
    nginx.set(name, await startNginxPod({ name, host: ip, port: clientPort, probePort, sidecarAddr: '127.0.0.1:1' }));
  };
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const c = await setupCluster(cp, NS, '127.0.71.', { beforeRunning });
  t.teardown(() => c.kubelet.stop());
  await createDeployment(c, DEP, 4);
  const [own, lagging1, lagging2, joiner] = (await waitForReadyPods(c, DEP, 4)).map((p) => p.metadata?.name ?? '').sort() as [string, string, string, string];
  await c.kubelet.setReady(joiner, false);
  await waitForReadyPods(c, DEP, 3);

  const s = await startSidecarProcess({
    KUBECONFIG: c.sidecarKubeconfig,
    SYNCER_DISCOVERY: 'kubernetes',
    POD_NAME: own,
    POD_NAMESPACE: NS,
    SYNCER_PROBE_PORT: String(probePort),
    // Room for a loaded machine: the checks end when the test gives the token, not on a timer.
    SYNCER_HARD_TIMEOUT_MS: '10000',
    LOG_LEVEL: 'info',
  });
  t.teardown(() => s.stop());
  const peerSets = (): string[][] => s.lines.filter((l) => l['msg'] === 'peer set changed').map((l) => l['peers'] as string[]);
  await waitFor(() => peerSets().some((p) => p.length === 3), 'the peer set of the three Ready pods', { timeoutMs: 30_000, context: () => s.output() });

  const token = `join-${process.pid}`;
  await writeToken(nginx.get(own)!.apiUrl, token); // issued at this pod; the others get it later
  const first = s.check(token, own);
  await waitFor(async () => (await inFlight(s)) === 1, 'the first check to be in flight', { intervalMs: 20 });

  // The new replica turns Ready while the first check still waits for the token to reach its peers.
  await c.kubelet.setReady(joiner, true);
  await waitFor(() => peerSets().at(-1)?.includes(joiner), `${joiner} to join the peer set`, { timeoutMs: 30_000, intervalMs: 10 });
  const second = s.check(token, own);
  await waitFor(async () => (await inFlight(s)) === 2, 'the identical check to be in flight too', { intervalMs: 20 });
  // Now the token reaches the two peers the first check asks; never the replica that joined.
  await Promise.all([lagging1, lagging2].map((name) => writeToken(nginx.get(name)!.apiUrl, token)));

  const [r1, r2] = await Promise.all([first, second]);
  const outcomes = (r: typeof r1): string[][] => (r.body.peers ?? []).map((p) => [p.name, p.outcome]);
  t.same([r1.tokenStatus, outcomes(r1)], ['Synced', [[lagging1, 'synced'], [lagging2, 'synced']]], 'the first check: Synced among the peers of its time');
  t.same(
    [r2.tokenStatus, r2.body.shared, outcomes(r2)],
    ['Partialy', false, [[lagging1, 'synced'], [lagging2, 'synced'], [joiner, 'missing']]],
    'the identical check did not join it: it asked the new replica too, which lacks the token',
  );
  const third = await s.check(token, own);
  t.same([third.tokenStatus, third.body.cached], ['Partialy', false], 'nor does the memo answer from the verdict begun before the join');
});
