// The chart's TLS on a real API server (support/control-plane.ts), with the real helm pointed at
// it by a kubeconfig:
//  - the cert-manager Certificates the chart renders are accepted with strict validation by
//    cert-manager's own CRDs (from its Go module: test/tooling/fetch-cert-manager-crds.sh), and a
//    malformed one is refused, so the acceptance means something;
//  - `helm install` generates the CA and the certificates once, `helm upgrade` keeps them (the
//    chart looks the Secrets up); a change of the certificate's name, or deleted Secrets, make new
//    ones on the next upgrade.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { CHART_DIR, INSTALL_SET, parseManifests, render, runHelm, type KubeObject } from './packaging/helm.js';
import { applyAll } from './packaging/cluster-install.js';
import { KubeClient, errorMessage } from './packaging/kube-apply.js';
import { startControlPlane } from './support/control-plane.js';
import { certManagerCrdFiles } from './support/tools.js';
import { waitFor } from './support/wait.js';

const SERVER_SECRET = 'apigw-apigw-syncer-tls-server';
const CLIENT_SECRET = 'apigw-apigw-syncer-tls-client';

interface Secret {
  readonly data?: Record<string, string>;
  readonly metadata?: { readonly annotations?: Record<string, string> };
}

t.test('on a real API server: cert-manager accepts the Certificates; helm upgrade keeps the generated CA', async (t) => {
  const started = Date.now();
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  t.comment(`control plane up in ${Date.now() - started} ms`);
  const admin = new KubeClient(cp.adminKubeConfig());

  await t.test("the chart's Certificates, against cert-manager's CRDs", async (t) => {
    const crds = certManagerCrdFiles().flatMap((f) => parseManifests(readFileSync(f, 'utf8')));
    for (const crd of crds) await admin.apply(crd);
    await waitFor(
      async () => {
        const crd = await admin.getJson<{ status?: { conditions?: { type: string; status: string }[] } }>('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/certificates.cert-manager.io');
        return (crd.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True');
      },
      'the Certificate CRD to be established',
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const objects = await render({ namespace: 'apigw-cm', values: { tls: { certManager: { issuerRef: { name: 'apigw-ca', kind: 'ClusterIssuer' } } } } });
    const certificates = objects.filter((o) => o.kind === 'Certificate');
    t.equal(certificates.length, 2, 'two Certificates rendered');
    await admin.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apigw-cm' } });
    await applyAll(admin, objects);
    for (const c of certificates) {
      const stored = await admin.getJson<KubeObject>(await admin.objectPath(c));
      t.match(stored['spec'], c['spec'], `${c.metadata.name}: accepted with fieldValidation=Strict and stored as rendered`);
    }
    // The acceptance has teeth: cert-manager's schema refuses what it does not know.
    const server = certificates[0];
    if (server === undefined) throw new Error('no Certificate');
    const misspelt = { ...server, metadata: { ...server.metadata, name: 'misspelt' }, spec: { ...(server['spec'] as object), dnsName: ['x'] } };
    await t.rejects(admin.apply(misspelt), /unknown field "spec\.dnsName"|spec\.dnsName: field not declared in schema/, 'a misspelt field: refused');
    const badUsage = { ...server, metadata: { ...server.metadata, name: 'bad-usage' }, spec: { ...(server['spec'] as object), usages: ['server authentication'] } };
    await t.rejects(admin.apply(badUsage), /usages\[0\]: Unsupported value: "server authentication"/, 'a usage cert-manager does not know: refused');
  });

  await t.test('helm install generates the CA once; helm upgrade keeps it', async (t) => {
    const helm = async (...args: string[]): Promise<void> => {
      const r = await runHelm([...args, CHART_DIR, '--namespace', 'apigw-up', '--kubeconfig', cp.adminKubeconfig, ...INSTALL_SET]);
      if (r.code !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr}`);
    };
    const secrets = async (): Promise<Secret[]> =>
      Promise.all([SERVER_SECRET, CLIENT_SECRET].map((name) => admin.getJson<Secret>(`/api/v1/namespaces/apigw-up/secrets/${name}`)));
    const ca = (s: readonly Secret[]): string => s[0]?.data?.['ca.crt'] ?? '';

    await helm('install', 'apigw', '--create-namespace');
    const installed = await secrets();
    t.ok(ca(installed) !== '' && ca(installed) === installed[1]?.data?.['ca.crt'], 'install: both Secrets, one CA');

    await helm('upgrade', 'apigw', '--set', 'replicas=2');
    const deployment = await admin.getJson<{ spec?: { replicas?: number } }>('/apis/apps/v1/namespaces/apigw-up/deployments/apigw-apigw-syncer');
    t.equal(deployment.spec?.replicas, 2, 'the upgrade was applied');
    t.same(
      (await secrets()).map((s) => s.data),
      installed.map((s) => s.data),
      'upgrade: the CA, both certificates and their keys unchanged (looked up, not generated again)',
    );

    await helm('upgrade', 'apigw', '--set', 'replicas=2', '--set', 'tls.serverName=peers.apigw.internal');
    const renamed = await secrets();
    t.not(ca(renamed), ca(installed), 'a new name for the certificate: generated again, with a new CA');
    t.match(new X509Certificate(Buffer.from(renamed[0]?.data?.['tls.crt'] ?? '', 'base64')).subjectAltName, /^DNS:peers\.apigw\.internal, /, 'naming it');

    for (const name of [SERVER_SECRET, CLIENT_SECRET]) {
      const r = await admin.send('DELETE', `/api/v1/namespaces/apigw-up/secrets/${name}`);
      t.equal(r.status, 200, `${name} deleted ${r.status === 200 ? '' : errorMessage(r.body)}`);
    }
    await helm('upgrade', 'apigw', '--set', 'replicas=2', '--set', 'tls.serverName=peers.apigw.internal');
    const fresh = await secrets();
    t.ok(ca(fresh) !== '' && ca(fresh) !== ca(renamed), 'Secrets deleted, then upgrade: new ones, from a new CA (how to rotate them by hand)');
  });
});
