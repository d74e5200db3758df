// The chart's values as a platform team sets them (helm/apigw-syncer, issue 10), with the real
// helm: what the schema and the templates refuse (each refusal with its message), what the
// rollout, disruption, spreading, image, heap, probe-TLS and canary values render, and `helm lint
// --strict` clean in every value set rendered here. The README's install commands are run too:
// the documented command is the one that works.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHART_DIR, helmLint, helmTemplate, kubeVersion, parseManifests, render, runHelm, type KubeObject } from './packaging/helm.js';
import { allContainers, envVar, ofKind, only, podSpec } from './packaging/k8s-objects.js';
import { plusValues } from './packaging/plus-values.js';
import { repoRoot } from './support/repo-root.js';
import { parseConfig } from '../sidecar/config.js';

type Values = Readonly<Record<string, unknown>>;

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const SELECTOR = { 'app.kubernetes.io/name': 'apigw-syncer', 'app.kubernetes.io/instance': 'apigw' };

/** Every value set the render tests below use; the last test lints each with --strict. */
const SETS = {
  defaults: {},
  'one replica': { replicas: 1 },
  'two replicas': { replicas: 2 },
  'PDB off': { podDisruptionBudget: { enabled: false } },
  'PDB maxUnavailable 0': { podDisruptionBudget: { maxUnavailable: 0 } },
  'PDB minAvailable 0': { podDisruptionBudget: { maxUnavailable: null, minAvailable: 0 } },
  'PDB minAvailable 50%': { podDisruptionBudget: { maxUnavailable: null, minAvailable: '50%' } },
  'spread DoNotSchedule': { topologySpread: { whenUnsatisfiable: 'DoNotSchedule' } },
  'spread off': { topologySpread: { enabled: false } },
  'spread overridden': {
    topologySpreadConstraints: [{ maxSkew: 2, topologyKey: 'example.com/rack', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { team: 'gw' } } }],
  },
  'Recreate, no minReadySeconds, 0 history': { strategy: { type: 'Recreate' }, minReadySeconds: 0, revisionHistoryLimit: 0 },
  'rolling 25%/2, minReadySeconds 30': { strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: 2 } }, minReadySeconds: 30, revisionHistoryLimit: 10 },
  'images by digest': { syncer: { image: { digest: DIGEST } }, nginx: { image: { digest: DIGEST } } },
  'syncer limit 1Gi': { syncer: { resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '1Gi' } } } },
  'syncer limit in M (no cap derived)': { syncer: { resources: { limits: { memory: '300M' } } } },
  'syncer explicit heap cap': { syncer: { maxOldSpaceMiB: 100 } },
  'probe TLS, mTLS': { syncer: { probeTls: { secretName: 'apigw-probe-tls', serverName: 'apigw.apigw.svc' } } },
  'probe TLS, CA only': { syncer: { probeTls: { secretName: 'apigw-probe-tls', certKey: '', keyKey: '', caKey: 'root.pem' } } },
  'TLS off': { tls: { enabled: false } },
  'plus with its image': plusValues(),
  'native sidecar': { syncer: { nativeSidecar: true } },
  'syncer preStop 12 s, nginx 9 s': { syncer: { preStopSeconds: 12 }, nginx: { preStopSleepSeconds: 9 } },
  'nginx preStop 9 s, hard deadline 2.5 s': { syncer: { config: { hardTimeoutMs: 2_500 } }, nginx: { preStopSleepSeconds: 9 } },
  'nginx probes slower': { nginx: { livenessProbe: { periodSeconds: 20, timeoutSeconds: 3, failureThreshold: 6 }, readinessProbe: { initialDelaySeconds: 2, periodSeconds: 3 } } },
  'IPv6 only': { nginx: { ipFamilies: ['IPv6'] } },
  'dual-stack, IPv6 first': { nginx: { ipFamilies: ['IPv6', 'IPv4'] } },
  'canary off': { syncer: { canary: { enabled: false } } },
  'canary every 30 s, token API on 8102': { syncer: { canary: { intervalMs: 30_000, timeoutMs: 8_000 } }, nginx: { apiPort: 8102 } },
} satisfies Record<string, Values>;
type SetName = keyof typeof SETS;

const rendered = new Map<SetName, Promise<KubeObject[]>>();
/** Renders a value set once (several tests read the same one). */
function objectsOf(name: SetName): Promise<KubeObject[]> {
  let r = rendered.get(name);
  if (r === undefined) {
    r = render({ values: SETS[name] });
    rendered.set(name, r);
  }
  return r;
}

async function syncerOf(name: SetName): Promise<ReturnType<typeof podSpec>['containers'][number]> {
  const s = allContainers(podSpec(await objectsOf(name))).get('syncer');
  if (s === undefined) throw new Error(`${name}: no syncer container`);
  return s.container;
}

t.test('the schema and the templates refuse unsafe or malformed values, each with its message', async (t) => {
  const cases: [string, Values, RegExp, boolean?][] = [];
  // The chart's own security contexts: no privilege in any of them.
  for (const [where, at] of [
    ['syncer.securityContext', (sc: Values): Values => ({ syncer: { securityContext: sc } })],
    ['nginx.securityContext', (sc: Values): Values => ({ nginx: { securityContext: sc } })],
  ] as const) {
    const path = `/${where.replace('.', '/')}`;
    cases.push(
      [`${where}.privileged: true`, at({ privileged: true }), new RegExp(`at '${path}/privileged': value must be false`)],
      [`${where}.runAsUser: 0`, at({ runAsUser: 0 }), new RegExp(`at '${path}/runAsUser': minimum: got 0, want 1`)],
      [`${where}.allowPrivilegeEscalation: true`, at({ allowPrivilegeEscalation: true }), new RegExp(`at '${path}/allowPrivilegeEscalation': value must be false`)],
      [`${where}.capabilities.add`, at({ capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } }), new RegExp(`at '${path}/capabilities/add': maxItems: got 1, want 0`)],
      [`${where}.runAsNonRoot: false`, at({ runAsNonRoot: false }), new RegExp(`at '${path}/runAsNonRoot': value must be true`)],
      [`${where}.capabilities without drop ALL`, at({ capabilities: { drop: ['NET_RAW'] } }), new RegExp(`at '${path}/capabilities/drop': no items match contains schema`)],
      [`${where}.seccompProfile Unconfined`, at({ seccompProfile: { type: 'Unconfined' } }), new RegExp(`at '${path}/seccompProfile/type': value must be one of 'RuntimeDefault', 'Localhost'`)],
    );
  }
  // The pod's: no UID 0, non-root enforced, and the container-only privilege fields do not exist there.
  cases.push(
    ['podSecurityContext.runAsUser: 0', { podSecurityContext: { runAsUser: 0 } }, /at '\/podSecurityContext\/runAsUser': minimum: got 0, want 1/],
    ['podSecurityContext.runAsGroup: 0', { podSecurityContext: { runAsGroup: 0 } }, /at '\/podSecurityContext\/runAsGroup': minimum: got 0, want 1/],
    ['podSecurityContext.runAsNonRoot: false', { podSecurityContext: { runAsNonRoot: false } }, /at '\/podSecurityContext\/runAsNonRoot': value must be true/],
    ['podSecurityContext.privileged: true', { podSecurityContext: { privileged: true } }, /at '\/podSecurityContext': additional properties 'privileged' not allowed/],
    ['podSecurityContext.sysctls', { podSecurityContext: { sysctls: [{ name: 'net.core.somaxconn', value: '1024' }] } }, /at '\/podSecurityContext\/sysctls': maxItems: got 1, want 0/],
    // Quantities: Kubernetes' own pattern (resource.Quantity), so "256MB" fails here, not at install.
    ['syncer memory limit 256MB', { syncer: { resources: { limits: { memory: '256MB' } } } }, /at '\/syncer\/resources\/limits\/memory': '256MB' does not match pattern/],
    ['nginx cpu request 0.5 cores', { nginx: { resources: { requests: { cpu: '0.5 cores' } } } }, /at '\/nginx\/resources\/requests\/cpu': '0\.5 cores' does not match pattern/],
    ['run dir size 16MB', { nginx: { runDirSizeLimit: '16MB' } }, /at '\/nginx\/runDirSizeLimit': '16MB' does not match pattern/],
    ['a negative memory limit', { syncer: { resources: { limits: { memory: '-1Gi' } } } }, /at '\/syncer\/resources\/limits\/memory': '-1Gi' does not match pattern/],
    ['a negative number', { nginx: { resources: { requests: { cpu: -1 } } } }, /at '\/nginx\/resources\/requests\/cpu': minimum: got -1, want 0/],
    ['two decimal points', { nginx: { resources: { requests: { memory: '1.2.3' } } } }, /at '\/nginx\/resources\/requests\/memory': '1\.2\.3' does not match pattern/],
    ['a suffix after a binary suffix', { nginx: { runDirSizeLimit: '1Gim' } }, /at '\/nginx\/runDirSizeLimit': '1Gim' does not match pattern/],
    // Images.
    ['a malformed digest', { syncer: { image: { digest: 'sha256:abc' } } }, /at '\/syncer\/image\/digest': 'sha256:abc' does not match pattern/],
    ['a digest without its algorithm', { nginx: { image: { digest: '0123456789abcdef'.repeat(4) } } }, /at '\/nginx\/image\/digest': '[0-9a-f]{64}' does not match pattern/],
    ['a registry with a scheme', { syncer: { image: { registry: 'https://registry.example.com' } } }, /at '\/syncer\/image\/registry': 'https:\/\/registry\.example\.com' does not match pattern/],
    ['flavor plus keeping the open-source image', { nginx: { flavor: 'plus' } }, /at '\/nginx\/plus': missing property 'image'/],
    // Disruption budget and rollout.
    ['both PDB numbers', { podDisruptionBudget: { minAvailable: 2 } }, /podDisruptionBudget: give maxUnavailable \(1\) or minAvailable \(2\), not both: set maxUnavailable: null to use minAvailable/],
    ['PDB percentage without %', { podDisruptionBudget: { maxUnavailable: '50' } }, /at '\/podDisruptionBudget\/maxUnavailable': oneOf failed|at '\/podDisruptionBudget\/maxUnavailable'/],
    ['unknown strategy', { strategy: { type: 'BlueGreen' } }, /at '\/strategy\/type': value must be one of 'RollingUpdate', 'Recreate'/],
    ['negative minReadySeconds', { minReadySeconds: -1 }, /at '\/minReadySeconds': minimum: got -1, want 0/],
    ['unknown whenUnsatisfiable', { topologySpread: { whenUnsatisfiable: 'Sometimes' } }, /at '\/topologySpread\/whenUnsatisfiable': value must be one of 'DoNotSchedule', 'ScheduleAnyway'/],
    ['a sidecar preStop as long as the grace period', { syncer: { preStopSeconds: 30 } }, /the syncer's preStop \(30 s\) must end within terminationGracePeriodSeconds \(30 s\)/],
    // The canary.
    ['a canary run as long as its interval', { syncer: { canary: { intervalMs: 5_000, timeoutMs: 5_000 } } }, /the canary's timeout \(5000 ms\) must be less than its interval \(5000 ms\)/],
    ['a canary interval under its default timeout', { syncer: { config: { canaryIntervalMs: 3_000 } } }, /the canary's timeout \(5000 ms\) must be less than its interval \(3000 ms\)/],
    ['a canary interval under a second', { syncer: { canary: { intervalMs: 500 } } }, /at '\/syncer\/canary\/intervalMs': minimum: got 500, want 1,?000/],
    ['a canary URL off the pod', { syncer: { config: { canaryUrl: 'http://10.0.0.7:8002/api/9/http/keyvals/apigw_tokens' } } }, /at '\/syncer\/config\/canaryUrl': '.*' does not match pattern/],
  );
  for (const [name, values, message] of cases) {
    const r = await helmTemplate({ values });
    t.not(r.code, 0, `${name}: refused`);
    t.match(r.stderr, message, `${name}: ${r.stderr.split('\n').find((l) => l.includes('at ') || l.includes('error')) ?? r.stderr}`);
  }

  const missing = await helmTemplate({ installValues: false });
  t.not(missing.code, 0, 'no image registry: refused');
  t.match(missing.stderr, /at '\/syncer\/image': missing property 'registry'/, 'the message names the missing registry');
  t.equal((await helmTemplate({ installValues: false, values: { syncer: { image: { registry: 'registry.example.com' } } } })).code, 0, 'the registry alone is enough');
});

t.test('PodDisruptionBudget: only with more than one replica; 0 is respected', async (t) => {
  const pdbs = async (name: SetName): Promise<ReturnType<typeof ofKind<'PodDisruptionBudget'>>> => ofKind(await objectsOf(name), 'PodDisruptionBudget');
  t.same(await pdbs('one replica'), [], 'one replica: no budget (it would block every node drain)');
  t.same(await pdbs('PDB off'), [], 'disabled: none');
  for (const name of ['defaults', 'two replicas'] as const) {
    const [pdb, ...more] = await pdbs(name);
    t.same(more, [], `${name}: one budget`);
    t.same(pdb?.spec, { maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow', selector: { matchLabels: SELECTOR } }, `${name}: one pod at a time; a pod that is not Ready never blocks a drain`);
    t.same(pdb?.spec?.selector?.matchLabels, only(await objectsOf(name), 'Deployment').spec?.selector.matchLabels, `${name}: selects the Deployment's pods`);
  }
  t.same(only(await objectsOf('PDB maxUnavailable 0'), 'PodDisruptionBudget').spec?.maxUnavailable, 0, 'maxUnavailable: 0 stays 0 (not the default 1)');
  const minZero = only(await objectsOf('PDB minAvailable 0'), 'PodDisruptionBudget').spec;
  t.same([minZero?.minAvailable, minZero?.maxUnavailable], [0, undefined], 'minAvailable: 0 stays 0, alone');
  const half = only(await objectsOf('PDB minAvailable 50%'), 'PodDisruptionBudget').spec;
  t.same([half?.minAvailable, half?.maxUnavailable], ['50%', undefined], 'a percentage, alone');
  // unhealthyPodEvictionPolicy is beta (on by default) from 1.27: older API servers would drop or refuse it.
  const old = only(await render({ extraArgs: ['--kube-version', '1.26.9'] }), 'PodDisruptionBudget').spec;
  t.equal(old?.unhealthyPodEvictionPolicy, undefined, 'Kubernetes 1.26: no unhealthyPodEvictionPolicy');
  t.equal(old?.maxUnavailable, 1, 'the budget itself stays');
});

t.test('pods carry the chart labels (version, helm.sh/chart); the immutable selector stays the selector labels', async (t) => {
  const tag = (JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  const deployment = only(await objectsOf('defaults'), 'Deployment');
  t.match(deployment.spec?.template.metadata?.labels, {
    ...SELECTOR,
    'app.kubernetes.io/version': tag,
    'helm.sh/chart': `apigw-syncer-${tag}`,
    'app.kubernetes.io/managed-by': 'Helm',
    'app.kubernetes.io/component': 'apigw',
  });
  t.same(deployment.spec?.selector.matchLabels, SELECTOR, 'the selector: name and instance only, so an upgrade to a new chart version can patch the Deployment');
});

t.test('both Services follow nginx.ipFamilies', async (t) => {
  const families = async (name: SetName): Promise<unknown[]> =>
    ofKind(await objectsOf(name), 'Service')
      .map((svc) => [svc.spec?.clusterIP === 'None' ? 'peers' : 'clients', svc.spec?.ipFamilyPolicy, svc.spec?.ipFamilies])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  t.same(
    await families('defaults'),
    [
      ['clients', 'SingleStack', ['IPv4']],
      ['peers', 'SingleStack', ['IPv4']],
    ],
    'defaults: IPv4 alone, as nginx listens',
  );
  t.same(
    await families('IPv6 only'),
    [
      ['clients', 'SingleStack', ['IPv6']],
      ['peers', 'SingleStack', ['IPv6']],
    ],
    'IPv6-only clusters: IPv6 Services, not the cluster default',
  );
  t.same(
    await families('dual-stack, IPv6 first'),
    [
      ['clients', 'RequireDualStack', ['IPv6', 'IPv4']],
      ['peers', 'RequireDualStack', ['IPv6', 'IPv4']],
    ],
    'both families: dual-stack required, the first one primary',
  );
});

t.test("nginx's probe timings are values", async (t) => {
  const probes = async (name: SetName): Promise<unknown[]> => {
    const nginx = allContainers(podSpec(await objectsOf(name))).get('nginx')?.container;
    return [nginx?.livenessProbe, nginx?.readinessProbe];
  };
  const check = { httpGet: { path: '/nginx-healthz', port: 'http' } };
  t.same(
    await probes('defaults'),
    [
      { ...check, initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 },
      { ...check, initialDelaySeconds: 0, periodSeconds: 5, timeoutSeconds: 1, failureThreshold: 3 },
    ],
    'defaults: what the chart had, now spelled out',
  );
  t.same(
    await probes('nginx probes slower'),
    [
      { ...check, initialDelaySeconds: 0, periodSeconds: 20, timeoutSeconds: 3, failureThreshold: 6 },
      { ...check, initialDelaySeconds: 2, periodSeconds: 3, timeoutSeconds: 1, failureThreshold: 3 },
    ],
    'as given, merged over the defaults',
  );
  const r = await helmTemplate({ values: { nginx: { readinessProbe: { periodSeconds: 0 } } } });
  t.not(r.code, 0, 'a period of 0: refused');
  t.match(r.stderr, /at '\/nginx\/readinessProbe\/periodSeconds': minimum: got 0, want 1/);
});

t.test('topology spread: nodes and zones by default, a preference; replaced by an explicit list', async (t) => {
  const spread = (name: SetName): Promise<ReturnType<typeof podSpec>['topologySpreadConstraints']> => objectsOf(name).then((o) => podSpec(o).topologySpreadConstraints);
  const expected = (whenUnsatisfiable: string): unknown[] =>
    ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'].map((topologyKey) => ({
      maxSkew: 1,
      topologyKey,
      whenUnsatisfiable,
      labelSelector: { matchLabels: SELECTOR },
      // Only this rollout's pods count: old and new ReplicaSets are spread on their own.
      matchLabelKeys: ['pod-template-hash'],
    }));
  t.same(await spread('defaults'), expected('ScheduleAnyway'), 'one per node and per zone, as far as the cluster allows');
  t.same(await spread('spread DoNotSchedule'), expected('DoNotSchedule'), 'or as a hard rule');
  t.equal(await spread('spread off'), undefined, 'off: none');
  t.same(await spread('spread overridden'), SETS['spread overridden'].topologySpreadConstraints, 'an explicit list replaces the defaults, as given');
});

t.test("termination: the syncer's preStop outlasts nginx's serving window; a native sidecar needs none", async (t) => {
  const preStop = async (name: SetName): Promise<unknown> => (await syncerOf(name)).lifecycle?.preStop?.exec?.command;
  const nginxPreStop = async (name: SetName): Promise<string> => allContainers(podSpec(await objectsOf(name))).get('nginx')?.container.lifecycle?.preStop?.exec?.command?.join(' ') ?? '';
  t.equal(await nginxPreStop('defaults'), 'sleep 5', 'nginx serves 5 s; its hook then ends by itself (the stop signal quits nginx gracefully)');
  const start = allContainers(podSpec(await objectsOf('defaults'))).get('nginx')?.container.args?.[0] ?? '';
  t.match(start, /^nginx -e stderr -c \S+ -g 'daemon off;' &$/m, 'the start script runs nginx as its child');
  t.match(start, /^trap 'kill -QUIT \$nginx_pid' TERM QUIT INT$/m, 'and turns the stop signal (TERM, or an image STOPSIGNAL of QUIT) into its graceful quit');
  t.same(await preStop('defaults'), ['sleep', '8'], "defaults: nginx's 5 s + the 1.5 s hard deadline rounded up + 1");
  t.same(await preStop('nginx preStop 9 s, hard deadline 2.5 s'), ['sleep', '13'], 'follows both: 9 + 3 + 1');
  t.equal(await nginxPreStop('nginx preStop 9 s, hard deadline 2.5 s'), 'sleep 9');
  t.same(await preStop('syncer preStop 12 s, nginx 9 s'), ['sleep', '12'], 'syncer.preStopSeconds as given');
  const native = await syncerOf('native sidecar');
  t.equal(native.restartPolicy, 'Always', 'native: an initContainer Kubernetes stops after nginx');
  t.equal(native.lifecycle, undefined, 'so no preStop');
});

t.test('rollout: strategy, minReadySeconds, revisionHistoryLimit', async (t) => {
  const spec = async (name: SetName): Promise<unknown[]> => {
    const d = only(await objectsOf(name), 'Deployment').spec;
    return [d?.strategy, d?.minReadySeconds, d?.revisionHistoryLimit];
  };
  t.same(await spec('defaults'), [{ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } }, 5, 5], 'defaults: a new pod is Ready before an old one goes');
  t.same(await spec('Recreate, no minReadySeconds, 0 history'), [{ type: 'Recreate' }, 0, 0], 'Recreate, and zeros rendered as zeros');
  t.same(await spec('rolling 25%/2, minReadySeconds 30'), [{ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: 2 } }, 30, 10], 'as given');
});

t.test('images: registry prefixed, a digest instead of the tag', async (t) => {
  const images = async (name: SetName): Promise<[string | undefined, string | undefined]> => {
    const c = allContainers(podSpec(await objectsOf(name)));
    return [c.get('syncer')?.container.image, c.get('nginx')?.container.image];
  };
  const tag = (JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  t.same(await images('defaults'), [`registry.example.com/apigw-syncer:${tag}`, 'openresty/openresty:1.27.1.2-alpine'], 'by tag, the registry in front of the syncer repository');
  t.same(await images('images by digest'), [`registry.example.com/apigw-syncer@${DIGEST}`, `openresty/openresty@${DIGEST}`], 'a digest pins either image');
  t.same((await images('plus with its image'))[1], 'registry.example.com/nginx-plus:r35', 'flavor plus runs the Plus image given');
});

t.test('the V8 heap cap follows the memory limit', async (t) => {
  const heap = async (name: SetName): Promise<string | undefined> => envVar(await syncerOf(name), 'NODE_OPTIONS')?.value;
  t.equal(await heap('defaults'), '--max-old-space-size=120', 'half of the default 240Mi limit');
  t.equal(await heap('syncer limit 1Gi'), '--max-old-space-size=512', 'half of 1Gi, in MiB');
  t.equal(await heap('syncer explicit heap cap'), '--max-old-space-size=100', 'syncer.maxOldSpaceMiB as given');
  t.equal(await heap('syncer limit in M (no cap derived)'), undefined, 'a limit in other units: no guess, V8 sizes its heap itself');
});

t.test("syncer.probeTls: the sidecar's own Secret mounted read-only into the syncer alone, its files as SYNCER_PROBE_*", async (t) => {
  const dir = '/etc/apigw-syncer/probe-tls';
  for (const [name, files] of [
    ['probe TLS, mTLS', { SYNCER_PROBE_CA_FILE: `${dir}/ca.crt`, SYNCER_PROBE_CERT_FILE: `${dir}/tls.crt`, SYNCER_PROBE_KEY_FILE: `${dir}/tls.key`, SYNCER_PROBE_SERVERNAME: 'apigw.apigw.svc' }],
    ['probe TLS, CA only', { SYNCER_PROBE_CA_FILE: `${dir}/root.pem`, SYNCER_PROBE_CERT_FILE: undefined, SYNCER_PROBE_KEY_FILE: undefined, SYNCER_PROBE_SERVERNAME: undefined }],
  ] as const) {
    const objects = await objectsOf(name);
    const spec = podSpec(objects);
    const syncer = await syncerOf(name);
    t.same(
      (spec.volumes ?? []).find((v) => v.name === 'syncer-probe-tls'),
      { name: 'syncer-probe-tls', secret: { secretName: 'apigw-probe-tls', defaultMode: 0o444 } },
      `${name}: the Secret as a volume`,
    );
    t.same(
      syncer.volumeMounts?.find((m) => m.name === 'syncer-probe-tls'),
      { name: 'syncer-probe-tls', mountPath: dir, readOnly: true },
      `${name}: mounted read-only where the env points`,
    );
    t.notOk(
      allContainers(spec).get('nginx')?.container.volumeMounts?.some((m) => m.name === 'syncer-probe-tls'),
      `${name}: nginx does not mount the syncer's client key`,
    );
    t.notOk(
      syncer.volumeMounts?.some((m) => m.name === 'tls-client'),
      `${name}: it replaces the chart's client certificate in the syncer`,
    );
    t.equal(envVar(syncer, 'SYNCER_PROBE_SCHEME')?.value, 'https', `${name}: probes go https`);
    for (const [env, value] of Object.entries(files)) t.equal(envVar(syncer, env)?.value, value, `${name}: ${env}`);
  }
  const plain = await syncerOf('TLS off');
  t.equal(envVar(plain, 'SYNCER_PROBE_SCHEME'), undefined, 'TLS off and no Secret: no scheme forced');
  t.notOk((podSpec(await objectsOf('TLS off')).volumes ?? []).some((v) => v.secret !== undefined), 'and no certificate volume');
  const conflict = await helmTemplate({ values: { syncer: { probeTls: { secretName: 's' }, config: { probeScheme: 'http' } } } });
  t.not(conflict.code, 0, 'a Secret with probeScheme http: refused');
  t.match(conflict.stderr, /syncer\.probeTls\.secretName makes probes https: remove syncer\.config\.probeScheme or set it to https/);
  const clear = await helmTemplate({ values: { syncer: { config: { probeScheme: 'http' } } } });
  t.not(clear.code, 0, 'probeScheme http with TLS on: refused');
  t.match(clear.stderr, /tls\.enabled makes probes https: remove syncer\.config\.probeScheme, or set tls\.enabled=false to probe in clear text/);
});

t.test("the canary: on by default, its URL the pod's own token API (nginx.apiPort), one value to turn it off", async (t) => {
  const canaryEnv = async (name: SetName) => {
    const syncer = await syncerOf(name);
    return ['SYNCER_CANARY_INTERVAL_MS', 'SYNCER_CANARY_TIMEOUT_MS', 'SYNCER_CANARY_URL'].map((v) => envVar(syncer, v)?.value);
  };
  t.same(await canaryEnv('defaults'), ['10000', '5000', 'http://127.0.0.1:8002/api/9/http/keyvals/apigw_tokens'], 'on by default, every 10 s');
  t.same(await canaryEnv('canary off'), [undefined, undefined, undefined], 'enabled: false: none of it (the sidecar\'s default is off)');
  const [interval, timeout, url] = await canaryEnv('canary every 30 s, token API on 8102');
  t.same([interval, timeout], ['30000', '8000']);
  const conf = Object.values(only(await objectsOf('canary every 30 s, token API on 8102'), 'ConfigMap').data ?? {}).join('\n');
  const port = new URL(url!).port;
  t.equal(port, '8102', 'the URL follows nginx.apiPort');
  t.match(conf, new RegExp(`^\\s*listen 127\\.0\\.0\\.1:${port};`, 'm'), "nginx's token API server listens there, on loopback");
  t.match(conf, /include apigw-syncer\/oss\/token-store-api\.conf;/, 'serving the keyvals API');
  for (const name of ['defaults', 'canary every 30 s, token API on 8102'] as const) {
    const env = Object.fromEntries((await syncerOf(name)).env?.flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])) ?? []);
    const parsed = parseConfig(env, { hostname: 'apigw-0', serviceAccountNamespace: undefined });
    t.ok(parsed.ok && parsed.config.canary !== undefined, `${name}: the sidecar accepts the canary's settings${parsed.ok ? '' : `: ${parsed.errors.join('; ')}`}`);
  }
});

/** `helm install` commands of a Markdown file's sh blocks, continuation lines joined, as argv. */
function installCommands(markdown: string): string[][] {
  const out: string[][] = [];
  for (const block of markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)) {
    const lines = (block[1] ?? '').replace(/\\\n\s*/g, ' ').split('\n');
    for (const line of lines) {
      const command = line.replace(/\s+#.*$/, '').trim();
      if (command.startsWith('helm install ')) out.push(command.split(/\s+/));
    }
  }
  return out;
}

t.test("the READMEs' install commands are ones that work", async (t) => {
  for (const file of ['README.md', join('helm', 'README.md')]) {
    const commands = installCommands(readFileSync(join(repoRoot(), file), 'utf8'));
    t.ok(commands.length > 0, `${file} shows how to install`);
    for (const argv of commands) {
      // helm install <release> <chart> …: rendered as helm template would, against the test's Kubernetes version.
      const [, , release = '', chart = '', ...flags] = argv;
      t.equal(chart, 'helm/apigw-syncer', `${file}: installs the repository's chart`);
      const r = await runHelm(['template', release, CHART_DIR, '--kube-version', kubeVersion(), ...flags]);
      t.equal(r.code, 0, `${file}: \`${argv.join(' ')}\` renders: ${r.stderr}`);
      if (r.code !== 0) continue;
      const syncer = allContainers(podSpec(parseManifests(r.stdout))).get('syncer');
      if (syncer !== undefined) t.match(syncer.container.image, /^[a-z0-9.-]+\.[a-z]+(:[0-9]+)?\/apigw-syncer[:@]/, `${file}: the syncer image comes from a named registry`);
      const lint = await runHelm(['lint', '--strict', CHART_DIR, '--kube-version', kubeVersion(), ...flags.filter((f) => f !== '--create-namespace')]);
      t.equal(lint.code, 0, `${file}: lint --strict clean: ${lint.stdout}`);
    }
  }
});

t.test('helm lint --strict is clean in every value set rendered here', async (t) => {
  for (const [name, values] of Object.entries(SETS)) {
    const r = await helmLint({ values });
    t.equal(r.code, 0, `${name}: ${r.code === 0 ? 'clean' : r.stdout + r.stderr}`);
  }
});
