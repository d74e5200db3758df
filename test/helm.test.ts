// The helm chart (helm/apigw-syncer), proven three ways:
//  1. rendered with the real helm and asserted on the parsed objects (sidecar toggle, native
//     sidecar, ocp4, RBAC from roles/rules.yaml, every SYNCER_* setting, the schema);
//  2. its nginx config run by a real nginx, with the real sidecar, as two pods would;
//  3. applied with strict server-side validation to a real kube-apiserver, whose controllers
//     create the pods (Pod Security "restricted" enforced), and whose RBAC lets the
//     sidecar's ServiceAccount do exactly what discovery needs; only the sidecar holds a token
//     (packaging/container-view.ts: each container's view of its projected volumes) and
//     discovers in-cluster with it; the disruption budget refuses a second eviction.
// The values a platform team sets (schema refusals, PDB, spreading, rollout, images, heap,
// probe TLS) are in helm-values.test.ts; termination under traffic in helm-termination.test.ts.
import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { KubeConfig, type V1Container, type V1NetworkPolicy, type V1PodDisruptionBudget, type V1PolicyRule, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { VARIABLES, parseConfig } from '../sidecar/config.js';
import { repoRoot } from './support/repo-root.js';
import { CHART_DIR, INSTALL_SET, helmBin, helmLint, helmTemplate, kubeVersion, notesRenderer, parseManifests, render, runHelm, type KubeObject } from './packaging/helm.js';
import { allContainers, envNames, envVar, ofKind, only, podSpec, resolveEnv } from './packaging/k8s-objects.js';
import { podsMissing, probeAsPeer, startPods } from './packaging/nginx-pods.js';
import { PodNetwork } from './support/pod-network.js';
import { plusValues } from './packaging/plus-values.js';
import { applyAll, restrictedNamespace, waitForPods } from './packaging/cluster-install.js';
import { KubeClient, errorMessage } from './packaging/kube-apply.js';
import { containerView } from './packaging/container-view.js';
import { SHAPES, at, compareShapes, type JsonSchema } from './packaging/schema-shapes.js';
import { imageAppDir, imageArgv, runtimeSpec } from './packaging/dockerfile.js';
import { startControlPlane } from './support/control-plane.js';
import { FakeKubelet } from './support/fake-kubelet.js';
import { execTracked, runTracked } from './support/processes.js';
import { runSidecarCommand } from './support/sidecar-process.js';
import { waitFor } from './support/wait.js';
import { requirePart } from './support/required.js';

const ROOT = repoRoot();
/** This file's pod network (support/pod-network.ts). */
const POD_SUBNET = '127.0.100';
const RULES = parse(readFileSync(join(ROOT, 'roles', 'rules.yaml'), 'utf8')) as V1PolicyRule[];
const PACKAGE_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** Where the in-cluster client reads the ServiceAccount token, CA and namespace. */
const API_ACCESS_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Every Affinity field the schema types, with valid values: rendered, and accepted by the API server. */
const SAMPLE_AFFINITY = {
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }], matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['drained-node'] }] }],
    },
    preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 10, preference: { matchExpressions: [{ key: 'node-role.example/edge', operator: 'Exists' }] } }],
  },
  podAffinity: {
    preferredDuringSchedulingIgnoredDuringExecution: [
      { weight: 5, podAffinityTerm: { topologyKey: 'topology.kubernetes.io/zone', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'backend' } }, namespaces: ['backends'] } },
    ],
  },
  podAntiAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: [
      {
        topologyKey: 'kubernetes.io/hostname',
        labelSelector: { matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: ['apigw-syncer'] }] },
        namespaceSelector: {},
        matchLabelKeys: ['pod-template-hash'],
      },
    ],
  },
};

function syncerOf(objects: readonly KubeObject[]): { container: V1Container; init: boolean } | undefined {
  return allContainers(podSpec(objects)).get('syncer');
}

function requireSyncer(objects: readonly KubeObject[]): V1Container {
  const s = syncerOf(objects);
  if (!s) throw new Error('no syncer container');
  return s.container;
}

t.test('helm lint passes for the main value combinations', async (t) => {
  const combos: Record<string, string[]> = {
    'the install command': [],
    'sidecar off': ['--set', 'syncer.enabled=false'],
    'ocp4 + native sidecar': ['--set', 'ocp4=true', '--set', 'syncer.nativeSidecar=true'],
    'network policy + probe TLS': ['--set', 'networkPolicy.enabled=true', '--set', 'syncer.probeTls.secretName=probe-tls'],
  };
  for (const [name, args] of Object.entries(combos)) {
    const r = await runHelm(['lint', '--strict', CHART_DIR, '--kube-version', kubeVersion(), ...INSTALL_SET, ...args]);
    t.equal(r.code, 0, `lint --strict (${name}): ${r.stdout}${r.stderr}`);
  }
  const bare = await runHelm(['lint', '--strict', CHART_DIR, '--kube-version', kubeVersion()]);
  t.not(bare.code, 0, 'without a registry for the syncer image the chart refuses');
  t.match(bare.stdout + bare.stderr, /at '\/syncer\/image': missing property 'registry'/, 'and says what is missing');
});

t.test('chart version, appVersion and the default sidecar tag follow package.json', async (t) => {
  const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string };
  const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as { syncer: { image: { tag: string } } };
  t.equal(chart.version, PACKAGE_VERSION);
  t.equal(chart.appVersion, PACKAGE_VERSION);
  t.equal(values.syncer.image.tag, PACKAGE_VERSION);
});

t.test('render matrix: sidecar on/off × ocp4 × native sidecar', async (t) => {
  for (const enabled of [true, false]) {
    for (const ocp4 of [false, true]) {
      for (const nativeSidecar of [false, true]) {
        const name = `syncer.enabled=${enabled} ocp4=${ocp4} nativeSidecar=${nativeSidecar}`;
        const objects = await render({ values: { ocp4, syncer: { enabled, nativeSidecar } } });
        t.test(name, async (t) => {
          const spec = podSpec(objects);
          const containers = allContainers(spec);
          const nginx = containers.get('nginx');
          t.ok(nginx && !nginx.init, 'nginx is an app container');
          t.same(
            nginx ? envNames(nginx.container) : [],
            enabled ? ['POD_NAME', 'SYNCER_LISTEN_ADDR'] : ['POD_NAME'],
            "nginx's env: what render-pod-conf.sh reads (its pod name, the sidecar's address)",
          );
          const syncer = containers.get('syncer');
          t.equal(syncer !== undefined, enabled, 'sidecar present exactly when enabled');
          const syncerCount = [...(spec.initContainers ?? []), ...spec.containers].filter((c) => c.name === 'syncer').length;
          t.equal(syncerCount, enabled ? 1 : 0, 'at most one sidecar');

          if (syncer) {
            const c = syncer.container;
            t.equal(syncer.init, nativeSidecar, 'initContainer exactly when native');
            t.equal(c.restartPolicy, nativeSidecar ? 'Always' : undefined, 'restartPolicy Always only as a native sidecar');
            for (const [env, path] of [
              ['POD_NAME', 'metadata.name'],
              ['POD_NAMESPACE', 'metadata.namespace'],
              ['POD_IP', 'status.podIP'],
            ] as const) {
              t.equal(envVar(c, env)?.valueFrom?.fieldRef?.fieldPath, path, `${env} from the downward API`);
            }
            t.same(c.ports, [{ name: 'ops', containerPort: 9090, protocol: 'TCP' }], 'ops port');
            t.same(c.livenessProbe?.httpGet, { path: '/healthz', port: 'ops' }, 'liveness on the named ops port');
            t.same(c.readinessProbe?.httpGet, { path: '/readyz', port: 'ops' }, 'readiness on the named ops port');
            t.ok(c.resources?.requests?.['cpu'] && c.resources.requests['memory'] && c.resources.limits?.['memory'], 'resource defaults');
            const sc = c.securityContext;
            t.equal(sc?.runAsNonRoot, true);
            t.equal(sc?.readOnlyRootFilesystem, true);
            t.equal(sc?.allowPrivilegeEscalation, false);
            t.same(sc?.capabilities?.drop, ['ALL']);
            t.equal(sc?.seccompProfile?.type, 'RuntimeDefault');
            // nginx reaches the sidecar where it listens.
            t.equal(envVar(nginx?.container ?? c, 'SYNCER_LISTEN_ADDR')?.value, '127.0.0.1:8080');
          }

          const podSc = spec.securityContext ?? {};
          if (ocp4) {
            for (const field of ['runAsUser', 'runAsGroup', 'fsGroup'] as const) t.equal(podSc[field], undefined, `no pod ${field} under ocp4`);
            for (const { container } of containers.values()) {
              t.equal(container.securityContext?.runAsUser, undefined, `no runAsUser in ${container.name} under ocp4`);
              t.equal(container.securityContext?.runAsGroup, undefined, `no runAsGroup in ${container.name} under ocp4`);
            }
          } else {
            t.equal(podSc.runAsUser, 101, 'fixed UID outside OpenShift');
            t.equal(podSc.fsGroup, 101);
          }
          t.equal(podSc.runAsNonRoot, true, 'pod runs as non-root in every mode');

          // RBAC and the pod's identity.
          t.equal(ofKind(objects, 'ServiceAccount').length, enabled ? 1 : 0, 'ServiceAccount only with the sidecar');
          t.equal(ofKind(objects, 'Role').length, enabled ? 1 : 0, 'Role only with the sidecar');
          t.equal(ofKind(objects, 'RoleBinding').length, enabled ? 1 : 0, 'RoleBinding only with the sidecar');
          if (enabled) {
            const sa = only(objects, 'ServiceAccount');
            const role = only(objects, 'Role');
            const binding = only(objects, 'RoleBinding');
            t.same(role.rules, RULES, 'Role rules are roles/rules.yaml');
            t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata?.name });
            t.same(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata?.name, namespace: 'apigw' }]);
            t.equal(spec.serviceAccountName, sa.metadata?.name, 'pod runs as the sidecar ServiceAccount');
          } else {
            t.equal(spec.serviceAccountName, undefined);
            t.equal(spec.automountServiceAccountToken, false, 'no API token mounted when nothing calls the API');
          }

          // Metrics annotations and the peer Service's ops port follow the sidecar.
          const annotations = only(objects, 'Deployment').spec?.template.metadata?.annotations ?? {};
          t.equal(annotations['prometheus.io/scrape'], enabled ? 'true' : undefined);
          const peers = ofKind(objects, 'Service').find((s) => s.spec?.clusterIP === 'None');
          t.equal(peers?.spec?.publishNotReadyAddresses, true, 'headless peer Service lists not-ready pods');
          t.equal(
            (peers?.spec?.ports ?? []).some((p) => p.name === 'ops'),
            enabled,
            'peer Service exposes ops only with the sidecar',
          );
          const nginxConf = only(objects, 'ConfigMap').data?.['nginx.conf'] ?? '';
          t.equal(nginxConf.includes('policy-wait-strict.conf'), enabled, 'nginx waits for replication only with the sidecar');
        });
      }
    }
  }
});

t.test('RBAC is rendered only for kubernetes discovery', async (t) => {
  for (const [discovery, extra] of [
    ['dns', {}],
    ['static', { peers: 'a=127.0.0.1:80' }],
  ] as const) {
    const objects = await render({ values: { syncer: { discovery, config: extra } } });
    t.equal(ofKind(objects, 'ServiceAccount').length + ofKind(objects, 'Role').length + ofKind(objects, 'RoleBinding').length, 0, `${discovery}: no SA/Role/RoleBinding`);
    t.equal(podSpec(objects).automountServiceAccountToken, false, `${discovery}: no token mounted`);
    t.equal(envVar(requireSyncer(objects), 'SYNCER_DISCOVERY')?.value, discovery);
  }
  const dns = await render({ values: { syncer: { discovery: 'dns' } } });
  t.equal(envVar(requireSyncer(dns), 'SYNCER_DNS_NAME')?.value, 'apigw-apigw-syncer-peers.apigw.svc', 'dns discovery defaults to the headless Service');
});

t.test('every SYNCER_* variable of the sidecar is reachable from values, with values the sidecar accepts', async (t) => {
  const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as {
    properties: { syncer: { properties: { config: { properties: Record<string, unknown> } } } };
  };
  const keys = Object.keys(schema.properties.syncer.properties.config.properties);
  const snake = (k: string): string => `SYNCER_${k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
  const fromValues = new Set([...keys.map(snake), 'SYNCER_DISCOVERY']);
  const sidecarVars = Object.keys(VARIABLES).filter((v) => v.startsWith('SYNCER_'));
  t.same([...fromValues].sort(), [...sidecarVars].sort(), 'values.schema.json syncer.config keys ↔ sidecar/config.ts VARIABLES');

  const config: Record<string, unknown> = {
    listenAddr: '127.0.0.1:8081',
    opsAddr: '0.0.0.0:9091',
    peers: 'pod-a=10.0.0.1:8000, pod-b=10.0.0.2:8000',
    deployment: 'apigw',
    peerScope: 'deployment',
    resyncMs: 86_400_000, // prints as 8.64e+07 without the chart's integer formatting
    coalesceMs: 50,
    watchTimeoutS: 120,
    dnsName: 'apigw-peers.apigw.svc',
    dnsIntervalMs: 2_000,
    probeScheme: 'https',
    probePort: 8443,
    probePath: '/probe',
    probeHeader: 'X-Token',
    probeHeaderPrefix: 'Token ',
    probeTimeoutMs: 300,
    probeConnections: 8,
    probeCaFile: '/etc/apigw-syncer/probe-tls/ca.crt',
    probeCertFile: '/etc/apigw-syncer/probe-tls/tls.crt',
    probeKeyFile: '/etc/apigw-syncer/probe-tls/tls.key',
    probeServername: 'apigw.apigw.svc',
    retryDelayMs: 5,
    retryBackoff: 1.5,
    retryMaxDelayMs: 100,
    retryJitter: 0.35,
    maxRetries: 20,
    hardTimeoutMs: 2_500,
    maxInFlight: 128,
    syncedTtlMs: 10_000,
    syncedMax: 50_000,
    canaryIntervalMs: 20_000,
    canaryTimeoutMs: 4_000,
    canaryUrl: 'http://[::1]:8102/api/9/http/keyvals/apigw_tokens',
  };
  t.same(Object.keys(config).sort(), [...keys].sort(), 'the sample sets every key');
  const objects = await render({ values: { syncer: { discovery: 'static', opsPort: 9091, logLevel: 'debug', config } } });
  const c = requireSyncer(objects);
  for (const name of sidecarVars) t.ok(envVar(c, name), `${name} rendered`);
  const env = resolveEnv(c, { 'metadata.name': 'apigw-0', 'metadata.namespace': 'apigw', 'status.podIP': '10.0.0.9' });
  t.equal(env['SYNCER_RESYNC_MS'], '86400000', 'large integers are not printed in exponent form');
  t.equal(env['SYNCER_PROBE_HEADER_PREFIX'], 'Token ', 'trailing space kept');
  t.equal(env['SYNCER_RETRY_JITTER'], '0.35');
  const parsed = parseConfig(env, { hostname: 'h', serviceAccountNamespace: undefined });
  t.ok(parsed.ok, `the sidecar accepts the rendered env: ${parsed.ok ? '' : parsed.errors.join('; ')}`);
  if (parsed.ok) {
    t.equal(parsed.config.hardTimeoutMs, 2_500);
    t.equal(parsed.config.discovery.kubernetes.resyncMs, 86_400_000);
    t.equal(parsed.config.retry.backoff, 1.5);
    t.equal(parsed.config.probe.headerPrefix, 'Token ');
    t.same(parsed.config.ops, { host: '0.0.0.0', port: 9091 });
    t.equal(parsed.config.discovery.staticPeers.length, 2);
    t.same(parsed.config.checks, { maxInFlight: 128, syncedTtlMs: 10_000, syncedMax: 50_000 });
    t.equal(parsed.config.probe.tls.servername, 'apigw.apigw.svc');
    t.same(parsed.config.canary, { intervalMs: 20_000, timeoutMs: 4_000, url: 'http://[::1]:8102/api/9/http/keyvals/apigw_tokens' }, 'syncer.config wins over syncer.canary');
  }

  // Unset values are not rendered: the sidecar's own defaults apply.
  const defaults = requireSyncer(await render());
  t.same(
    envNames(defaults).sort(),
    [
      'LOG_LEVEL',
      'NODE_OPTIONS',
      'POD_IP',
      'POD_NAME',
      'POD_NAMESPACE',
      'SYNCER_CANARY_INTERVAL_MS',
      'SYNCER_CANARY_TIMEOUT_MS',
      'SYNCER_CANARY_URL',
      'SYNCER_DISCOVERY',
      'SYNCER_OPS_ADDR',
      'SYNCER_PROBE_CA_FILE',
      'SYNCER_PROBE_CERT_FILE',
      'SYNCER_PROBE_KEY_FILE',
      'SYNCER_PROBE_PORT',
      'SYNCER_PROBE_SCHEME',
      'SYNCER_PROBE_SERVERNAME',
    ],
    'defaults: identity, discovery, the heap cap, the canary (on in the chart), the two values the pod layout fixes (ops port, probe port), and mutual TLS (tls)',
  );
  t.equal(envVar(defaults, 'SYNCER_PROBE_PORT')?.value, '8001', 'peers are probed on nginx.probePort');
  t.equal(envVar(defaults, 'SYNCER_PROBE_SCHEME')?.value, 'https', 'over TLS');
  const clear = requireSyncer(await render({ values: { tls: { enabled: false } } }));
  t.same(
    envNames(clear).filter((n) => n.startsWith('SYNCER_PROBE_')),
    ['SYNCER_PROBE_PORT'],
    'tls.enabled=false: the sidecar keeps its own default, http',
  );
});

t.test('invalid values are rejected with a message naming the value', async (t) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['replicas: "three"', { replicas: 'three' }, /replicas[\s\S]*(integer|number)/],
    ['hardTimeoutMs: -5', { syncer: { config: { hardTimeoutMs: -5 } } }, /hardTimeoutMs[\s\S]*(minimum|>=|less than)/i],
    ['unknown discovery mode', { syncer: { discovery: 'gossip' } }, /discovery[\s\S]*(kubernetes|enum|value must be)/i],
    ['misspelt config key', { syncer: { config: { hardTimeoutMS: 10 } } }, /hardTimeoutMS/],
    ['static without peers', { syncer: { discovery: 'static' } }, /peers/],
    ['unknown nginx flavor', { nginx: { flavor: 'apache' } }, /flavor/],
    ['peers with kubernetes discovery', { syncer: { config: { peers: 'a=10.0.0.1:80' } } }, /peers is only used with syncer\.discovery=static/],
    ['port used twice in the pod', { nginx: { port: 9090 } }, /syncer\.opsPort uses port 9090, already used by nginx\.port/],
    ['opsAddr port ≠ opsPort', { syncer: { config: { opsAddr: '0.0.0.0:9999' } } }, /opsAddr \(0\.0\.0\.0:9999\) must use syncer\.opsPort \(9090\)/],
  ];
  for (const [name, values, message] of cases) {
    const r = await helmTemplate({ values });
    t.not(r.code, 0, `${name}: rejected`);
    t.match(r.stderr, message, `${name}: clear message`);
    t.comment(`${name} → ${r.stderr.split('\n').slice(0, 4).join(' | ')}`);
  }
  const old = await helmTemplate({ values: { syncer: { nativeSidecar: true } }, extraArgs: ['--kube-version', '1.28.9'] });
  t.not(old.code, 0, 'native sidecar on Kubernetes 1.28: rejected');
  t.match(old.stderr, /syncer\.nativeSidecar needs Kubernetes >= 1\.29/);
  t.equal((await helmTemplate({ extraArgs: ['--kube-version', '1.28.9'] })).code, 0, 'a regular sidecar still renders for 1.28');
});

t.test('metrics: scrape annotations and an optional ServiceMonitor on the ops port', async (t) => {
  const plain = await render();
  t.equal(plain.filter((o) => o.kind === 'ServiceMonitor').length, 0, 'no ServiceMonitor by default');
  const annotations = only(plain, 'Deployment').spec?.template.metadata?.annotations ?? {};
  t.same(
    [annotations['prometheus.io/scrape'], annotations['prometheus.io/port'], annotations['prometheus.io/path']],
    ['true', '9090', '/metrics'],
  );
  const withMonitor = await render({ values: { metrics: { serviceMonitor: { enabled: true, labels: { release: 'prom' } }, podAnnotations: false } } });
  const monitor = withMonitor.find((o) => o.kind === 'ServiceMonitor');
  t.equal(monitor?.apiVersion, 'monitoring.coreos.com/v1');
  t.match(monitor, { metadata: { labels: { release: 'prom' } }, spec: { endpoints: [{ port: 'ops', path: '/metrics' }] } });
  const peerLabels = ofKind(withMonitor, 'Service').find((s) => s.spec?.clusterIP === 'None')?.metadata?.labels ?? {};
  const wanted = (monitor?.['spec'] as { selector?: { matchLabels?: Record<string, string> } } | undefined)?.selector?.matchLabels ?? {};
  t.ok(Object.keys(wanted).length > 0, 'ServiceMonitor has a selector');
  t.has(peerLabels, wanted, 'it selects the peer Service (which has the ops port)');
  t.equal(ofKind(withMonitor, 'Service').filter((s) => Object.entries(wanted).every(([k, v]) => s.metadata?.labels?.[k] === v)).length, 1, 'and only it');
  t.equal(only(withMonitor, 'Deployment').spec?.template.metadata?.annotations?.['prometheus.io/scrape'], undefined, 'annotations can be turned off');
  const noPeers = await helmTemplate({ values: { metrics: { serviceMonitor: { enabled: true } }, peerService: { enabled: false } } });
  t.not(noPeers.code, 0);
  t.match(noPeers.stderr, /metrics\.serviceMonitor\.enabled scrapes through the peer Service: it needs deployment\.enabled and peerService\.enabled/);
});

t.test('roles/rbac.yaml is what roles/generate.sh renders from roles/rules.yaml', async (t) => {
  const { stdout: out } = await execTracked('bash', [join(ROOT, 'roles', 'generate.sh')], { env: { ...process.env, HELM: helmBin() } });
  t.equal(readFileSync(join(ROOT, 'roles', 'rbac.yaml'), 'utf8'), out, 'stale roles/rbac.yaml: run roles/generate.sh > roles/rbac.yaml');
  const objects = parseManifests(out);
  t.same(only(objects, 'Role').rules, RULES);
  t.same(
    objects.map((o) => o.kind),
    ['ServiceAccount', 'Role', 'RoleBinding'],
  );
  for (const o of objects) {
    const labels = (o.metadata['labels'] ?? {}) as Record<string, string>;
    t.notOk('app.kubernetes.io/managed-by' in labels, `${o.kind}: plain manifests do not claim to be managed by helm`);
  }
});

t.test('NOTES.txt tells the operator how to check the sidecar', async (t) => {
  const renderer = notesRenderer();
  t.teardown(() => renderer.remove());
  const { notes } = renderer;
  const on = await notes({});
  t.match(on, /kubectl -n apigw logs "\$POD" -c syncer -f/);
  t.match(on, /kubectl -n apigw exec "\$POD" -c syncer -- node apigw-syncer\.mjs peers/);
  t.match(on, /\/metrics/);
  t.match(on, /auth can-i --list --as=system:serviceaccount:apigw:apigw-apigw-syncer-syncer/);
  t.match(await notes({ syncer: { enabled: false } }), /sidecar is DISABLED/);
  t.match(on, /Tokens between replicas travel over mutual TLS, with certificates generated by the chart into Secrets apigw-apigw-syncer-tls-server and apigw-apigw-syncer-tls-client/);
  t.match(await notes({ tls: { certManager: { issuerRef: { name: 'apigw-ca', kind: 'ClusterIssuer' } } } }), /issued by cert-manager \(ClusterIssuer apigw-ca\)/);
  t.match(await notes({ tls: { enabled: false } }), /WARNING: tls\.enabled=false: every token a check asks about\ncrosses the pod network in clear text/);
});

t.test('the packaged chart carries the snippets and rules (helm follows the symlinks)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'apigw-package-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runHelm(['package', CHART_DIR, '--destination', dir]);
  t.equal(r.code, 0, r.stderr);
  const tgz = join(dir, `apigw-syncer-${PACKAGE_VERSION}.tgz`);
  t.ok(existsSync(tgz), 'package written');
  const fromTgz = await render({ chart: tgz, values: plusValues() });
  const fromDir = await render({ values: plusValues() });
  t.same(only(fromTgz, 'ConfigMap').data, only(fromDir, 'ConfigMap').data, 'same nginx files from the package');
  t.same(only(fromTgz, 'Role').rules, RULES, 'same rules from the package');
  const snippet = readFileSync(join(ROOT, 'nginx-snippets', 'common', 'http.conf'), 'utf8');
  t.equal(only(fromTgz, 'ConfigMap').data?.['apigw-syncer_common_http.conf'], snippet.replace(/\n$/, ''), 'snippet shipped verbatim');
});

t.test('a parent chart can include just the sidecar container', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'apigw-parent-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const parent = join(dir, 'team-gw');
  mkdirSync(join(parent, 'templates'), { recursive: true });
  mkdirSync(join(parent, 'charts'));
  const pkg = await runHelm(['package', CHART_DIR, '--destination', join(parent, 'charts')]);
  t.equal(pkg.code, 0, pkg.stderr);
  writeFileSync(
    join(parent, 'Chart.yaml'),
    `apiVersion: v2\nname: team-gw\nversion: 1.0.0\ndependencies:\n  - name: apigw-syncer\n    version: ${PACKAGE_VERSION}\n`,
  );
  writeFileSync(join(parent, 'values.yaml'), 'apigw-syncer:\n  deployment:\n    enabled: false\n  syncer:\n    image:\n      registry: registry.example.com\n    config:\n      probePort: 8443\n');
  writeFileSync(
    join(parent, 'templates', 'deployment.yaml'),
    [
      '{{- $syncer := index .Subcharts "apigw-syncer" }}',
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: team-gw',
      'spec:',
      '  selector:',
      '    matchLabels: {app: team-gw}',
      '  template:',
      '    metadata:',
      '      labels: {app: team-gw}',
      '    spec:',
      '      serviceAccountName: {{ include "apigw-syncer.serviceAccountName" $syncer }}',
      '      automountServiceAccountToken: false',
      '      containers:',
      '        - name: gateway',
      '          image: team/gateway:1',
      '        {{- include "apigw-syncer.sidecarContainer" $syncer | nindent 8 }}',
      '      volumes:',
      '        {{- include "apigw-syncer.sidecarVolumes" $syncer | nindent 8 }}',
      '',
    ].join('\n'),
  );
  const objects = await render({ chart: parent, release: 'team' });
  const deployments = ofKind(objects, 'Deployment');
  t.same(
    deployments.map((d) => d.metadata?.name),
    ['team-gw'],
    'only the parent Deployment: deployment.enabled=false keeps the subchart to RBAC',
  );
  const spec = podSpec(objects);
  t.same(
    spec.containers.map((c) => c.name),
    ['gateway', 'syncer'],
  );
  const syncer = requireSyncer(objects);
  t.equal(syncer.image, `registry.example.com/apigw-syncer:${PACKAGE_VERSION}`, 'subchart defaults reach the template');
  t.same(
    (spec.volumes ?? []).map((v) => v.name),
    (syncer.volumeMounts ?? []).map((m) => m.name),
    'apigw-syncer.sidecarVolumes holds every volume the sidecar mounts (its projected token)',
  );
  t.equal(envVar(syncer, 'SYNCER_PROBE_PORT')?.value, '8443', 'parent values reach the template');
  t.equal(spec.serviceAccountName, only(objects, 'ServiceAccount').metadata?.name, 'the subchart renders the ServiceAccount the parent uses');
  t.same(only(objects, 'Role').rules, RULES);
});

t.test('the rendered nginx config runs: two pods in network namespaces of their own, real nginx + real sidecar, mutual TLS', async (t) => {
  requirePart(podsMissing());
  const network = await PodNetwork.create(POD_SUBNET);
  // The canary as the chart renders it (its URL from nginx.apiPort), often enough to see a run.
  const canary = { intervalMs: 1_000, timeoutMs: 500 };
  const started = Date.now();
  const release = await startPods(network, [
    { name: 'pod-a', canary },
    { name: 'pod-b', canary },
  ]).catch(async (err: unknown) => {
    await network.remove();
    throw err;
  });
  const [a, b] = release.pods;
  if (!a || !b) throw new Error('pods not started');
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await release.stop();
    await network.remove();
  });
  t.comment(`two pods up in ${Date.now() - started} ms`);
  for (const pod of [a, b]) t.equal((await helmLint({ values: pod.values })).code, 0, `${pod.name}'s values: helm lint --strict clean`);

  const noToken = await fetch(`${a.base}/`);
  t.equal(noToken.status, 200, 'no bearer token: served without a check');
  t.equal(noToken.headers.get('x-token-status'), null);

  const token = `tok-${Date.now()}`;
  const auth = { Authorization: `Bearer ${token}` };
  t.equal(await a.postToken(token), 201, "token written to pod-a only, through pod-a's own loopback");
  t.equal(await probeAsPeer(a, b.tls, token), 200, 'pod-a probe: has it');
  t.equal(await probeAsPeer(b, b.tls, token), 401, "pod-b probe: not yet (its 127.0.0.1 is not pod-a's)");

  const waiting = await fetch(`${a.base}/`, { headers: auth });
  t.equal(waiting.status, 503, 'wait-strict: not on every replica → 503');
  t.match(waiting.headers.get('x-token-status') ?? '', /^(NotSynced|Timeout)$/, 'with the verdict');
  t.equal(waiting.headers.get('retry-after'), '1');

  t.equal(await b.postToken(token), 201, 'token replicated to pod-b');
  const synced = await fetch(`${a.base}/`, { headers: auth });
  t.equal(synced.status, 200, 'served once every replica has the token');
  t.equal(synced.headers.get('x-token-status'), 'Synced');
  t.equal((await synced.text()).trim(), 'apigw');

  const metrics = await (await fetch(`${a.ops}/metrics`)).text();
  t.match(metrics, /syncer_checks_total\{verdict="Synced"\} [1-9]/, 'the check is counted in the sidecar metrics');
  t.match(metrics, /syncer_probes_total\{result="synced"\} [1-9]/, 'over https: probes answered (mutual TLS with the generated certificates)');

  // The canary writes into its own pod's token API (the rendered nginx.apiPort): its runs end,
  // none with write_failed. The open-source store does not replicate, so pod-b never gets
  // pod-a's key, and the canary says so.
  const ran = await waitFor(async () => {
    const ready = (await (await fetch(`${a.ops}/readyz`)).json()) as { canary?: { result: string; notArrived: Array<{ name: string; result: string }> } };
    return ready.canary;
  }, "pod-a's first canary run", { timeoutMs: 30_000 });
  t.match(ran, { result: 'incomplete', notArrived: [{ name: 'pod-b', result: 'missing' }] });
  t.match(await (await fetch(`${a.ops}/metrics`)).text(), /^syncer_canary_runs_total\{result="write_failed"\} 0$/m, "every write was taken by the pod's token API");

  stopped = true;
  const [exitA, exitB] = await Promise.all([a.stop(), b.stop()]);
  t.same(exitA, { code: 0, signal: null }, 'sidecar exits 0 on SIGTERM');
  t.same(exitB, { code: 0, signal: null });
});

t.test('installs on a real kube-apiserver: strict validation, restricted Pod Security, RBAC, token only in the sidecar, PDB', async (t) => {
  const started = Date.now();
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  t.comment(`control plane up in ${Date.now() - started} ms`);
  const admin = new KubeClient(cp.adminKubeConfig());
  const replicas = 2;
  const installs: { ns: string; values: Record<string, unknown> }[] = [
    {
      ns: 'apigw-on',
      values: {
        // The optional objects too: the real API server must accept them as rendered.
        networkPolicy: {
          enabled: true,
          clientFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress' } } }, { ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.1.0/24'] } }],
          opsFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
        },
        syncer: { probeTls: { secretName: 'apigw-probe-tls', serverName: 'apigw.apigw-on.svc' } },
      },
    },
    { ns: 'apigw-off', values: { syncer: { enabled: false } } },
    { ns: 'apigw-native', values: { syncer: { nativeSidecar: true }, podDisruptionBudget: { maxUnavailable: 0 } } },
    {
      ns: 'apigw-ocp4',
      values: {
        ocp4: true,
        affinity: SAMPLE_AFFINITY,
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'apigw', effect: 'NoSchedule' }],
        podDisruptionBudget: { maxUnavailable: null, minAvailable: '50%' },
        // values.yaml's rollingUpdate must not come along: the API refuses it with Recreate.
        strategy: { type: 'Recreate' },
        topologySpread: { whenUnsatisfiable: 'DoNotSchedule' },
      },
    },
  ];
  const rendered = new Map<string, KubeObject[]>();
  for (const { ns, values } of installs) {
    const lint = await helmLint({ namespace: ns, values: { replicas, ...values } });
    t.equal(lint.code, 0, `${ns}: helm lint --strict clean ${lint.code === 0 ? '' : lint.stdout}`);
    const objects = await render({ namespace: ns, values: { replicas, ...values } });
    rendered.set(ns, objects);
    await admin.apply(restrictedNamespace(ns));
    await applyAll(admin, objects);
    t.pass(`${ns}: ${objects.length} objects accepted with fieldValidation=Strict`);
  }

  // A field the API does not know is refused, not dropped: the check above has teeth.
  const typo = structuredClone(only(rendered.get('apigw-on') ?? [], 'Deployment')) as unknown as Record<string, Record<string, unknown>>;
  const typoSpec = typo['spec'];
  if (typoSpec) typoSpec['replica'] = 3;
  await t.rejects(admin.apply(typo as unknown as KubeObject), /spec\.replica: field not declared in schema|unknown field "spec\.replica"/, 'unknown fields are refused, not dropped');

  const kubelet = new FakeKubelet(cp.adminKubeConfig(), 'apigw-on', '127.0.4.');
  t.teardown(() => kubelet.stop());
  await kubelet.start();

  const selector = 'app.kubernetes.io/name=apigw-syncer,app.kubernetes.io/instance=apigw';
  for (const { ns, values } of installs) {
    const pods = await waitForPods(admin, ns, selector, replicas);
    const enabled = (values['syncer'] as { enabled?: boolean } | undefined)?.enabled !== false;
    const native = (values['syncer'] as { nativeSidecar?: boolean } | undefined)?.nativeSidecar === true;
    for (const pod of pods) {
      const spec = pod.spec;
      if (!spec) throw new Error('pod without spec');
      const names = spec.containers.map((c) => c.name);
      const initNames = (spec.initContainers ?? []).map((c) => c.name);
      t.same(names, enabled && !native ? ['nginx', 'syncer'] : ['nginx'], `${ns}: app containers`);
      t.same(initNames, native ? ['syncer'] : [], `${ns}: init containers`);
      if (native) t.equal(spec.initContainers?.[0]?.restartPolicy, 'Always', `${ns}: native sidecar kept by the API server`);
      t.equal(spec.serviceAccountName, enabled ? 'apigw-apigw-syncer-syncer' : 'default', `${ns}: service account`);
      // The API server's ServiceAccount admission adds no token volume when automount is off:
      // the syncer's projected token is the only credential in the pod.
      t.equal(spec.automountServiceAccountToken, false, `${ns}: no token automounted`);
      const mountsOf = (c: { volumeMounts?: Array<{ mountPath: string }> } | undefined): string[] => (c?.volumeMounts ?? []).map((m) => m.mountPath);
      const nginx = spec.containers.find((c) => c.name === 'nginx');
      t.notOk(mountsOf(nginx).some((m) => m.startsWith('/var/run/secrets')), `${ns}: nginx has no ServiceAccount token`);
      const syncerContainer = [...spec.containers, ...(spec.initContainers ?? [])].find((c) => c.name === 'syncer');
      if (enabled) t.ok(mountsOf(syncerContainer).includes('/var/run/secrets/kubernetes.io/serviceaccount'), `${ns}: the syncer has its projected token`);
      if (values['ocp4'] === true) t.equal(spec.securityContext?.runAsUser, undefined, `${ns}: UID left to the SCC`);
    }
    t.pass(`${ns}: ${pods.length} pods created under Pod Security "restricted"`);
  }

  const applied = rendered.get('apigw-on') ?? [];
  t.same(
    applied.filter((o) => o.kind === 'NetworkPolicy' || o.kind === 'PodDisruptionBudget').map((o) => o.kind).sort(),
    ['NetworkPolicy', 'PodDisruptionBudget'],
    'the NetworkPolicy and the PodDisruptionBudget were among the objects the API server accepted',
  );

  // The checks above have teeth: the same pod without automountServiceAccountToken: false gets
  // the token in every container, nginx included (a dry-run create runs the admission chain).
  const template = only(applied, 'Deployment').spec?.template;
  if (!template?.spec) throw new Error('no pod template');
  const { automountServiceAccountToken: _optOut, ...defaultSpec } = template.spec;
  const dryRun = await admin.send(
    'POST',
    '/api/v1/namespaces/apigw-on/pods?dryRun=All',
    JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'automount-control', labels: { control: 'true' } }, spec: defaultSpec }),
  );
  t.equal(dryRun.status, 201, dryRun.status === 201 ? 'dry-run create of the pod without the opt-out' : errorMessage(dryRun.body));
  const admitted = JSON.parse(dryRun.body) as V1Pod;
  t.ok(
    admitted.spec?.containers.find((c) => c.name === 'nginx')?.volumeMounts?.some((m) => m.mountPath === API_ACCESS_PATH),
    'without the opt-out, admission mounts the token into nginx too',
  );

  // The NetworkPolicy selects exactly these pods; the budgets are stored as rendered (0 kept).
  const policy = await admin.getJson<V1NetworkPolicy>('/apis/networking.k8s.io/v1/namespaces/apigw-on/networkpolicies/apigw-apigw-syncer');
  const [onPod] = await admin.list<V1Pod>('v1', 'Pod', 'apigw-on', selector);
  t.has(onPod?.metadata?.labels ?? {}, policy.spec?.podSelector?.matchLabels ?? { missing: 'selector' }, 'the NetworkPolicy selects the apigw pods');
  t.same(
    (policy.spec?.ingress ?? []).map((rule) => (rule.ports ?? []).map((p) => p.port)),
    [[8000], [8001], [9090]],
    'three rules: clients, the probe port (apigw pods only), metrics',
  );
  const budgetOf = (ns: string): Promise<V1PodDisruptionBudget> => admin.getJson<V1PodDisruptionBudget>(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/apigw-apigw-syncer`);
  t.same((await budgetOf('apigw-native')).spec?.maxUnavailable, 0, 'maxUnavailable: 0 reaches the API server as 0');
  t.equal((await budgetOf('apigw-on')).spec?.unhealthyPodEvictionPolicy, 'AlwaysAllow', 'the API server keeps unhealthyPodEvictionPolicy (a server with the field gated off would drop it)');
  for (const name of ['apigw-apigw-syncer', 'apigw-apigw-syncer-peers']) {
    const svc = await admin.getJson<V1Service>(`/api/v1/namespaces/apigw-on/services/${name}`);
    t.same([svc.spec?.ipFamilyPolicy, svc.spec?.ipFamilies], ['SingleStack', ['IPv4']], `${name}: stored with the families nginx listens on`);
  }
  t.match(onPod?.metadata?.labels, { 'helm.sh/chart': `apigw-syncer-${PACKAGE_VERSION}`, 'app.kubernetes.io/version': PACKAGE_VERSION }, "the Deployment's pods carry the chart's version labels");
  // Both families where the cluster has one: refused at install, not a Service that quietly serves one.
  const dualStack = ofKind(await render({ namespace: 'apigw-on', values: { nginx: { ipFamilies: ['IPv4', 'IPv6'] } } }), 'Service').find((svc) => svc.spec?.clusterIP !== 'None');
  const refused = await admin.send('POST', '/api/v1/namespaces/apigw-on/services?dryRun=All', JSON.stringify(dualStack));
  t.equal(refused.status, 422, 'nginx.ipFamilies [IPv4, IPv6] on this IPv4-only API server: refused');
  t.match(errorMessage(refused.body), /not configured for dual-stack services|IPv6.*not configured on this cluster/, 'saying the cluster has no dual-stack');
  const half = (await budgetOf('apigw-ocp4')).spec;
  t.same([half?.minAvailable, half?.maxUnavailable], ['50%', undefined], 'minAvailable 50% alone');
  const ocp4Deployment = await admin.getJson<{ spec?: { strategy?: unknown } }>('/apis/apps/v1/namespaces/apigw-ocp4/deployments/apigw-apigw-syncer');
  t.same(ocp4Deployment.spec?.strategy, { type: 'Recreate' }, 'Recreate accepted (no rollingUpdate carried along)');

  // RBAC: the sidecar's token can do what discovery does, in its namespace, and nothing else.
  // A TokenRequest token of the syncer's ServiceAccount: what the kubelet writes into the
  // projected volume (serviceAccountToken source) is one of these.
  const saKubeconfig = await cp.kubeconfigFor({ namespace: 'apigw-on', name: 'apigw-apigw-syncer-syncer' });
  const saConfig = new KubeConfig();
  saConfig.loadFromFile(saKubeconfig);
  const sa = new KubeClient(saConfig);
  const allowed = [
    '/api/v1/namespaces/apigw-on/pods',
    '/api/v1/namespaces/apigw-on/pods?watch=1&timeoutSeconds=1',
    '/apis/apps/v1/namespaces/apigw-on/replicasets',
    '/apis/apps/v1/namespaces/apigw-on/replicasets?watch=1&timeoutSeconds=1',
    '/apis/apps/v1/namespaces/apigw-on/deployments',
    '/apis/apps/v1/namespaces/apigw-on/deployments/apigw-apigw-syncer',
    '/apis/apps/v1/namespaces/apigw-on/deployments?watch=1&timeoutSeconds=1',
  ];
  for (const path of allowed) t.equal((await sa.send('GET', path)).status, 200, `allowed: GET ${path}`);
  const denied: [string, string, string?][] = [
    ['GET', '/api/v1/namespaces/apigw-on/secrets'],
    ['GET', '/api/v1/namespaces/apigw-on/configmaps'],
    ['GET', '/api/v1/namespaces/apigw-off/pods'],
    ['GET', '/api/v1/pods'],
    ['GET', '/api/v1/nodes'],
    ['DELETE', '/api/v1/namespaces/apigw-on/pods/x'],
    ['POST', '/api/v1/namespaces/apigw-on/configmaps', '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}'],
  ];
  for (const [method, path, body] of denied) t.equal((await sa.send(method, path, body)).status, 403, `denied: ${method} ${path}`);

  // The peers command, in the sidecar's own view of the pod (its env, its projected volume
  // written as the kubelet would and mounted where the in-cluster client reads it; no
  // kubeconfig), finds the other pods: the projected token, CA and namespace are all discovery
  // needs, and the Role is sufficient (owner lookup included).
  const ready = await waitForPods(admin, 'apigw-on', selector, replicas);
  const withIps = await waitFor(
    async () => {
      const pods = await admin.list<V1Pod>('v1', 'Pod', 'apigw-on', selector);
      return pods.filter((p) => p.status?.podIP && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')).length === ready.length ? pods : undefined;
    },
    'pods Running+Ready with IPs',
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const self = withIps[0];
  const other = withIps[1];
  if (!self?.metadata?.name || !other?.metadata?.name || !self.status?.podIP) throw new Error('pods without names or IPs');
  const syncer = self.spec?.containers.find((c) => c.name === 'syncer');
  if (!syncer) throw new Error('no syncer container in the created pod');
  const env = resolveEnv(syncer, { 'metadata.name': self.metadata.name, 'metadata.namespace': 'apigw-on', 'status.podIP': self.status.podIP });
  // kube-controller-manager publishes the CA ConfigMap into each new namespace.
  await waitFor(async () => (await admin.send('GET', '/api/v1/namespaces/apigw-on/configmaps/kube-root-ca.crt')).status === 200, 'kube-root-ca.crt in apigw-on', { timeoutMs: 30_000, intervalMs: 100 });
  const syncerView = await containerView(admin, self, 'syncer');
  t.teardown(() => syncerView.remove());
  t.same(syncerView.mounts.map((m) => m.target), [API_ACCESS_PATH], "the sidecar's view: its projected volume");
  const emptyHome = join(cp.dir, 'empty-home');
  mkdirSync(emptyHome);
  // The heap cap stays out of this run: tap instruments every child node process (its
  // processinfo loader keeps each loaded module's source and source map), which the client
  // library's ~900 modules push past a pod's cap. In a pod nothing does; the bench measures
  // the sidecar's memory without tap.
  const { NODE_OPTIONS: heapCap, ...podEnv } = env;
  t.match(heapCap, /^--max-old-space-size=\d+$/, 'the pod caps the heap');
  const inCluster = { ...podEnv, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(cp.server).port, HOME: emptyHome };
  const seen = await execTracked(syncerView.argv[0] ?? '', [...syncerView.argv.slice(1), '/bin/sh', '-c', `test -s ${API_ACCESS_PATH}/token && cat ${API_ACCESS_PATH}/namespace`], { env: inCluster });
  t.equal(seen.stdout, 'apigw-on', 'token and namespace where the in-cluster client reads them');
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const peersRun = await runSidecarCommand(['peers'], inCluster, { argv: [...syncerView.argv, ...imageArgv(runtimeSpec(dockerfile))], cwd: imageAppDir(dockerfile, ROOT) });
  const peersOutput = peersRun.stdout + peersRun.stderr;
  t.same(peersRun.exit, { code: 0, signal: null }, `peers command exits 0 in-cluster, with the projected token:\n${peersOutput}`);
  t.match(peersOutput, other.metadata.name, 'lists the other pod');
  t.comment(peersOutput);

  // nginx's view of the same pod holds no token: its client would find nothing to load.
  const nginxView = await containerView(admin, self, 'nginx');
  t.teardown(() => nginxView.remove());
  t.same(nginxView.mounts, [], "nginx's view: no projected volume");
  const nginxSees = await runTracked(nginxView.argv[0] ?? '', [...nginxView.argv.slice(1), '/bin/sh', '-c', `test -e ${API_ACCESS_PATH}/token`], { env: inCluster });
  t.equal(nginxSees.exit.code, 1, `no ${API_ACCESS_PATH}/token in nginx's view`);

  // The Kubernetes shapes the schema types fit the API server's: every field the chart types
  // exists there with the same type, enums within the API's (packaging/schema-shapes.ts).
  const index = await admin.getJson<{ paths: Record<string, { serverRelativeURL: string }> }>('/openapi/v3');
  const apiDefs: Record<string, JsonSchema> = {};
  for (const group of ['api/v1', 'apis/apps/v1', 'apis/networking.k8s.io/v1']) {
    const url = index.paths[group]?.serverRelativeURL;
    if (url === undefined) throw new Error(`no OpenAPI v3 document for ${group}`);
    Object.assign(apiDefs, (await admin.getJson<{ components: { schemas: Record<string, JsonSchema> } }>(url)).components.schemas);
  }
  const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as JsonSchema & { definitions: Record<string, JsonSchema> };
  // The comparison has teeth: a field the API lacks, and a field of another type, are found.
  const securityContext = apiDefs['io.k8s.api.core.v1.SecurityContext'] ?? {};
  t.same(
    compareShapes({ properties: { privilegd: { const: false }, runAsUser: { type: 'string' } } }, securityContext, 'control', schema.definitions, apiDefs),
    ['control.privilegd: not in the API', 'control.runAsUser: string here, integer in the API'],
    'control: a misspelt field and a wrong type are reported',
  );
  for (const [pointer, apiName] of Object.entries(SHAPES)) {
    const api = apiDefs[apiName];
    if (api === undefined) throw new Error(`the API server has no ${apiName}`);
    t.same(compareShapes(at(schema, pointer), api, pointer, schema.definitions, apiDefs), [], `${pointer} fits ${apiName}`);
  }

  // Node drains go one pod at a time: with one pod evicted, the next eviction is refused. The
  // kubelet stops first, so the evicted pod's replacement never becomes Ready and counted (the
  // API server retries a conflicting eviction after 500 ms, time enough for a quick kubelet).
  const counted = await waitFor(
    async () => {
      const pdb = await budgetOf('apigw-on');
      return pdb.status?.observedGeneration === pdb.metadata?.generation && pdb.status?.currentHealthy === replicas && pdb.status.disruptionsAllowed === 1 ? pdb : undefined;
    },
    'the disruption controller to count the apigw pods',
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  t.equal(counted.status?.expectedPods, replicas, "the budget covers the Deployment's pods");
  await kubelet.stop();
  const evict = (name: string): Promise<{ status: number; body: string }> =>
    admin.send('POST', `/api/v1/namespaces/apigw-on/pods/${name}/eviction`, JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: 'apigw-on' } }));
  const first = await evict(self.metadata.name);
  t.equal(first.status, 201, `first eviction allowed ${first.status === 201 ? '' : errorMessage(first.body)}`);
  const second = await evict(other.metadata.name);
  t.equal(second.status, 429, 'the second is refused while the first pod is out');
  t.match(errorMessage(second.body), /disruption budget/, 'because of the disruption budget');
});
