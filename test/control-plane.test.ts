// Proves the test harness: a real kube-apiserver + controller-manager on loopback, a
// Deployment whose pods the fake kubelet runs, RBAC-bound ServiceAccount kubeconfigs,
// and an API server outage/restart on the same port.
import t from 'tap';
import { ApiException, AppsV1Api, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from './support/control-plane.js';
import { waitFor } from './support/wait.js';
import { FakeKubelet } from './support/fake-kubelet.js';

const NS = 'cp-test';
const APP = 'web';

function readyRunning(p: V1Pod): boolean {
  return p.status?.phase === 'Running' && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

t.test('control plane + fake kubelet', async (t) => {
  const started = Date.now();
  const cp: ControlPlane = await startControlPlane();
  t.teardown(() => cp.stop());
  t.comment(`control plane up in ${Date.now() - started} ms at ${cp.server}`);
  t.match(cp.server, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.match(cp.caPem, /BEGIN CERTIFICATE/);

  const kc = cp.adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  /** Exactly `count` Running+Ready pods of the app (deadline 30 s). */
  const runningReady = (count: number, what: string): Promise<V1Pod[]> =>
    waitFor(
      async () => {
        const list = await core.listNamespacedPod({ namespace: NS, labelSelector: `app=${APP}` });
        const ok = list.items.filter(readyRunning);
        return ok.length === count ? ok : undefined;
      },
      what,
      { timeoutMs: 30_000, intervalMs: 100, retryOnError: true },
    );

  await core.createNamespace({ body: { metadata: { name: NS } } });
  const kubelet = new FakeKubelet(kc, NS, '127.0.3.', { log: (m) => t.comment(`kubelet: ${m}`) });
  t.teardown(() => kubelet.stop());
  await kubelet.start();

  await apps.createNamespacedDeployment({
    namespace: NS,
    body: {
      metadata: { name: APP },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: APP } },
        template: {
          metadata: { labels: { app: APP } },
          spec: { containers: [{ name: 'app', image: 'example.invalid/never-pulled:1' }] },
        },
      },
    },
  });

  const pods = await runningReady(2, '2 Running+Ready pods');
  const ips = pods.map((p) => p.status?.podIP ?? '').sort();
  t.equal(ips.length, 2);
  for (const ip of ips) t.match(ip, /^127\.0\.3\.\d+$/, 'pod IP from the fake kubelet prefix');
  t.not(ips[0], ips[1], 'pod IPs are unique');
  for (const p of pods) {
    t.equal(p.spec?.nodeName, 'fake-node', 'pod bound to fake-node');
    t.equal(kubelet.ipOf(p.metadata?.name ?? ''), p.status?.podIP, 'ipOf() agrees with status');
  }

  const dep = await waitFor(
    async () => {
      const d = await apps.readNamespacedDeployment({ namespace: NS, name: APP });
      return d.metadata?.annotations?.['deployment.kubernetes.io/revision'] === '1' && d.status?.availableReplicas === 2 ? d : undefined;
    },
    'Deployment revision annotation and available replicas',
    { timeoutMs: 20_000, intervalMs: 100, retryOnError: true },
  );
  t.equal(dep.metadata?.annotations?.['deployment.kubernetes.io/revision'], '1', 'Deployment revision 1');
  const rsList = await apps.listNamespacedReplicaSet({ namespace: NS, labelSelector: `app=${APP}` });
  t.equal(rsList.items.length, 1, 'one ReplicaSet');
  t.equal(rsList.items[0]?.metadata?.annotations?.['deployment.kubernetes.io/revision'], '1', 'ReplicaSet revision 1');

  // Readiness flips through the status subresource.
  const firstName = pods[0]?.metadata?.name ?? '';
  await kubelet.setReady(firstName, false);
  const notReady = await core.readNamespacedPod({ namespace: NS, name: firstName });
  t.notOk(readyRunning(notReady), 'setReady(false) clears Ready');
  await kubelet.setReady(firstName, true);
  t.ok(readyRunning(await core.readNamespacedPod({ namespace: NS, name: firstName })), 'setReady(true) sets Ready');

  // Graceful delete (as the ReplicaSet controller does) is finished by the fake kubelet;
  // the controller replaces the pod with a new one that gets a fresh IP.
  await core.deleteNamespacedPod({ namespace: NS, name: firstName });
  const after = await waitFor(
    async () => {
      const list = await core.listNamespacedPod({ namespace: NS, labelSelector: `app=${APP}` });
      const ok = list.items.filter(readyRunning);
      return list.items.length === 2 && ok.length === 2 && !list.items.some((p) => p.metadata?.name === firstName) ? ok : undefined;
    },
    'replacement pod',
    { timeoutMs: 20_000, intervalMs: 100, retryOnError: true },
  );
  const newIps = after.map((p) => p.status?.podIP ?? '');
  t.ok(newIps.every((ip) => /^127\.0\.3\.\d+$/.test(ip)), 'replacement has a prefix IP');
  t.ok(newIps.some((ip) => !ips.includes(ip)), 'replacement got a new IP');

  // A ServiceAccount token kubeconfig: authenticated, but RBAC grants it nothing.
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'reader' } } });
  const saPath = await cp.kubeconfigFor({ namespace: NS, name: 'reader' });
  const saKc = new KubeConfig();
  saKc.loadFromFile(saPath);
  t.equal(saKc.getCurrentCluster()?.server, cp.server);
  const saCore = saKc.makeApiClient(CoreV1Api);
  const denied = await saCore.listNamespacedSecret({ namespace: NS }).then(
    () => 0,
    (err: unknown) => (err instanceof ApiException ? err.code : -1),
  );
  t.equal(denied, 403, 'SA token is authenticated but forbidden to read secrets');

  // API server outage: stop, observe refusal, start on the same port, API answers again.
  const outageStart = Date.now();
  await cp.stopApiServer();
  t.comment(`API server stop took ${Date.now() - outageStart} ms`);
  const down = await core.readNamespace({ name: NS }).then(
    () => 'answered',
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  );
  t.not(down, 'answered', 'API refuses while stopped');
  await cp.startApiServer();
  t.comment(`API server restart took ${Date.now() - outageStart} ms`);
  const ns = await core.readNamespace({ name: NS });
  t.equal(ns.metadata?.name, NS, 'API answers after restart');

  // The fake kubelet's watch survives the outage: scale up and see a third pod run.
  const scale = await apps.readNamespacedDeploymentScale({ namespace: NS, name: APP });
  await apps.replaceNamespacedDeploymentScale({ namespace: NS, name: APP, body: { ...scale, spec: { replicas: 3 } } });
  const three = await runningReady(3, '3 Running+Ready pods after the outage');
  t.equal(new Set(three.map((p) => p.status?.podIP)).size, 3, 'three distinct IPs');

  await kubelet.stop();
  await cp.stop();
  await cp.stop(); // safe twice
  t.comment(`whole test ${Date.now() - started} ms`);
});
