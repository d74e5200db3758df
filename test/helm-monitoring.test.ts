// The chart's monitoring objects (issue 21): the PrometheusRule and the dashboard ConfigMap are
// off by default and follow their values (labels, alert labels, thresholds, durations, the
// scrape job; the canary's alerts follow the canary's timing and are left out when it is off,
// the memory alert's threshold follows the syncer's sizing), the schema refuses what Prometheus
// or the CRD would, a NetworkPolicy that would
// keep Prometheus out fails the render when a ServiceMonitor asks for scraping (NOTES warns
// when only the pod annotations do), and the ServiceMonitor, PrometheusRule and dashboard
// ConfigMap are applied with strict validation to a real API server serving the
// prometheus-operator CRDs. promtool's checks are in alerts.test.ts and dashboard.test.ts.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHART_DIR, helmLint, helmTemplate, notesRenderer, parseManifests, render, type KubeObject } from './packaging/helm.js';
import { ofKind } from './packaging/k8s-objects.js';
import { KubeClient } from './packaging/kube-apply.js';
import { RELEASE, SCRAPE_JOB, allRules, monitoringValues, renderRuleGroups, ruleGroupsOf, type Rule } from './packaging/monitoring.js';
import { startControlPlane } from './support/control-plane.js';
import { prometheusOperatorCrdDir } from './support/tools.js';
import { waitFor } from './support/wait.js';

const alertsOf = (rules: readonly Rule[]): Map<string, Rule> => new Map(rules.flatMap((r) => (r.alert === undefined ? [] : [[r.alert, r] as const])));
const crdFile = (kind: string): KubeObject[] => parseManifests(readFileSync(join(prometheusOperatorCrdDir(), `monitoring.coreos.com_${kind}.yaml`), 'utf8'));

t.test('off by default, and nothing without the sidecar', async (t) => {
  const kinds = (objects: readonly KubeObject[]): string[] => objects.filter((o) => o.kind === 'PrometheusRule' || o.metadata.name.endsWith('-dashboard')).map((o) => o.kind);
  t.same(kinds(await render(RELEASE)), [], 'defaults: no PrometheusRule, no dashboard');
  t.same(kinds(await render({ ...RELEASE, values: monitoringValues({ syncer: { enabled: false } }) })), [], 'syncer.enabled=false: neither');
  t.same(kinds(await render({ ...RELEASE, values: monitoringValues() })).sort(), ['ConfigMap', 'PrometheusRule'], 'both when enabled');
});

t.test('the PrometheusRule follows its values', async (t) => {
  const objects = await render({ ...RELEASE, values: monitoringValues({ metrics: { prometheusRule: { labels: { release: 'kube-prometheus-stack' } } } }) });
  const rule = objects.find((o) => o.kind === 'PrometheusRule');
  t.match(rule?.metadata, { name: 'apigw-apigw-syncer-syncer', namespace: 'apigw', labels: { release: 'kube-prometheus-stack', 'app.kubernetes.io/component': 'syncer' } }, "labels for the Prometheus's ruleSelector");
  const defaults = alertsOf(allRules(ruleGroupsOf(objects)));
  t.same(
    [...defaults.keys()],
    [
      'ApigwSyncerNotSyncedRatioHigh',
      'ApigwSyncerPeerLagging',
      'ApigwSyncerPeerFailing',
      'ApigwSyncerCanaryFailing',
      'ApigwSyncerCanaryWriteFailing',
      'ApigwSyncerCanaryNotRunning',
      'ApigwSyncerDiscoveryNotSynced',
      'ApigwSyncerChecksOverloaded',
      'ApigwSyncerProbesUnexpected',
      'ApigwSyncerUnexpectedErrors',
      'ApigwSyncerMemoryNearLimit',
      'ApigwSyncerDown',
      'ApigwSyncerAbsent',
    ],
  );
  t.equal(defaults.get('ApigwSyncerDown')?.expr, `up{namespace="apigw", job="${SCRAPE_JOB}"} == 0`, "the ServiceMonitor's job: the peer Service's name");

  const tuned = alertsOf(
    allRules(
      await renderRuleGroups({
        metrics: {
          prometheusRule: {
            runbookUrl: 'https://wiki.example.com/apigw-syncer/README.md',
            alertLabels: { team: 'gateway', severity: 'ignored' },
            alerts: {
              notSyncedRatio: { threshold: 0.2, for: '1h30m', severity: 'page' },
              peerLagging: { thresholdSeconds: 0.25 },
              canaryNotRunning: { staleSeconds: 90 },
              absent: { for: '30m' },
            },
          },
        },
      }),
    ),
  );
  const notSynced = tuned.get('ApigwSyncerNotSyncedRatioHigh');
  t.match(notSynced?.expr, / > 0\.2$/, 'threshold');
  t.equal(notSynced?.for, '1h30m', 'for');
  t.same(notSynced?.labels, { severity: 'page', team: 'gateway' }, 'severity, and alertLabels beside it (they cannot replace it)');
  t.match(tuned.get('ApigwSyncerPeerLagging')?.expr, / > 0\.25$/);
  t.match(tuned.get('ApigwSyncerCanaryNotRunning')?.expr, / > 90$/);
  t.equal(tuned.get('ApigwSyncerAbsent')?.for, '30m');
  t.same(tuned.get('ApigwSyncerDown')?.labels, { severity: 'critical', team: 'gateway' });
  for (const [name, rule] of tuned) t.equal(rule.annotations?.['runbook_url'], `https://wiki.example.com/apigw-syncer/README.md#${name.toLowerCase()}`, `${name}: runbook under runbookUrl`);

  // Down and absent need the job the sidecars are scraped under.
  const unknownJob = alertsOf(allRules(await renderRuleGroups({ metrics: { serviceMonitor: { enabled: false } } })));
  t.notOk(unknownJob.has('ApigwSyncerDown') || unknownJob.has('ApigwSyncerAbsent'), 'no ServiceMonitor, no scrapeJob: no down/absent alerts (they would fire forever)');
  t.equal(unknownJob.size, 11, 'the other alerts stay');
  const ownJob = alertsOf(allRules(await renderRuleGroups({ metrics: { serviceMonitor: { enabled: false }, prometheusRule: { scrapeJob: 'kubernetes-pods' } } })));
  t.equal(ownJob.get('ApigwSyncerAbsent')?.expr, 'absent(up{namespace="apigw", job="kubernetes-pods"})', 'a scrape job of your own');
});

t.test('the canary alerts follow the canary as the sidecar gets it, and are left out when it is off', async (t) => {
  const canaryOf = async (values: Record<string, unknown>): Promise<{ alerts: Map<string, Rule>; records: string[] }> => {
    const rules = allRules(await renderRuleGroups(values));
    return { alerts: alertsOf(rules), records: rules.flatMap((r) => (r.record?.includes('canary') ? [r.record] : [])) };
  };
  const own = `{namespace="apigw", job="${SCRAPE_JOB}"}`;
  const notRunning = (a: Map<string, Rule>): string => a.get('ApigwSyncerCanaryNotRunning')?.expr ?? 'not rendered';

  // The chart's canary: every 10 s, 5 s timeout. Two runs missed take 35 s: the floor, 120 s.
  const chart = await canaryOf({});
  t.match(notRunning(chart.alerts), `increase(syncer_canary_runs_total${own}[120s])) == 0`, 'no run ended in 120 s (the floor)');
  t.match(notRunning(chart.alerts), `(time() - process_start_time_seconds${own}) > 120`, '…in a sidecar up for longer');
  t.equal(chart.alerts.get('ApigwSyncerCanaryFailing')?.expr, `namespace_job_peer:syncer_canary_peer_failed:ratio_rate5m${own} > 0.5`, 'the 5-minute ratio the dashboard reads');
  t.same(chart.records, ['namespace_job_peer_result:syncer_canary_peer_results:rate5m', 'namespace_job_peer:syncer_canary_peer_failed:ratio_rate5m'], 'the 5-minute recording rules only');

  // A minute: three intervals and the timeout, 185 s; five runs still fit in 5 minutes.
  const minute = await canaryOf({ syncer: { canary: { intervalMs: 60_000 } } });
  t.match(notRunning(minute.alerts), /\[185s\]\)\) == 0[^]* > 185$/, 'a 60 s canary: 185 s');
  t.match(minute.alerts.get('ApigwSyncerCanaryFailing')?.expr, /:ratio_rate5m\{/);

  // Two minutes: the windows hold five runs of each sidecar (10m), beside the dashboard's 5m.
  const two = await canaryOf({ syncer: { canary: { intervalMs: 120_000 } } });
  const failing = two.alerts.get('ApigwSyncerCanaryFailing');
  t.equal(failing?.expr, `namespace_job_peer:syncer_canary_peer_failed:ratio_rate10m${own} > 0.5`, 'a 2-minute canary: a 10-minute window');
  t.match(failing?.annotations?.['description'], /over 10 minutes:/, 'which its description names');
  t.match(two.alerts.get('ApigwSyncerCanaryWriteFailing')?.expr, /result="write_failed"\}\[10m\]\)\)\n\/\n.*\[10m\]\)\)/, 'the write failures over the same window');
  t.same(two.records.filter((r) => r.endsWith('10m')), ['namespace_job_peer_result:syncer_canary_peer_results:rate10m', 'namespace_job_peer:syncer_canary_peer_failed:ratio_rate10m'], 'recorded at 10m too');
  t.match(notRunning(two.alerts), /\[365s\]/, '3 × 120 s + 5 s');

  // The timing the sidecar gets: syncer.config's canary keys win, extraEnv comes last; an explicit staleSeconds wins over all.
  const config = await canaryOf({ syncer: { canary: { enabled: false }, config: { canaryIntervalMs: 90_000, canaryTimeoutMs: 20_000 } } });
  t.match(notRunning(config.alerts), /\[290s\]/, 'syncer.config turns it on: 3 × 90 s + 20 s');
  t.match(config.alerts.get('ApigwSyncerCanaryFailing')?.expr, /:ratio_rate8m\{/, '450 s of runs: 8 minutes');
  const extraEnv = await canaryOf({ syncer: { extraEnv: [{ name: 'SYNCER_CANARY_INTERVAL_MS', value: '60000' }] } });
  t.match(notRunning(extraEnv.alerts), /\[185s\]/, 'an extraEnv entry overrides the values');
  const explicit = await canaryOf({ syncer: { canary: { intervalMs: 120_000 } }, metrics: { prometheusRule: { alerts: { canaryNotRunning: { staleSeconds: 1_000_000 } } } } });
  t.match(notRunning(explicit.alerts), /\[1000000s\][^]* > 1000000$/, 'staleSeconds, when set (a whole number, as PromQL reads it)');

  // Off: nothing of the canary, everything else.
  for (const [why, values] of [
    ['syncer.canary.enabled=false', { syncer: { canary: { enabled: false } } }],
    ['syncer.config.canaryIntervalMs=0', { syncer: { config: { canaryIntervalMs: 0 } } }],
  ] as const) {
    const off = await canaryOf(values);
    t.same([...off.alerts.keys()].filter((a) => a.includes('Canary')), [], `${why}: no canary alert`);
    t.same(off.records, [], `${why}: no canary recording rule`);
    t.equal(off.alerts.size, 10, `${why}: the ten others stay`);
  }

  // Without a known job the canary alerts still keep to the release's namespace.
  const noJob = await canaryOf({ metrics: { serviceMonitor: { enabled: false } } });
  t.match(notRunning(noJob.alerts), 'syncer_canary_runs_total{namespace="apigw"}[120s]');
});

t.test("the memory alert's threshold follows the syncer's sizing: 32 MiB above V8's heap cap", async (t) => {
  const exprOf = async (values: Record<string, unknown>): Promise<string> => alertsOf(allRules(await renderRuleGroups(values))).get('ApigwSyncerMemoryNearLimit')?.expr ?? 'not rendered';
  const threshold = async (values: Record<string, unknown>): Promise<string | undefined> => /> ([0-9.]+)$/.exec(await exprOf(values))?.[1];
  t.match(await exprOf({}), `process_resident_memory_bytes{namespace="apigw", job="${SCRAPE_JOB}"}\n  /\n  syncer_memory_limit_bytes{namespace="apigw", job="${SCRAPE_JOB}"}`, 'resident / limit, of this release only');
  const limit = (memory: string, more: Record<string, unknown> = {}): Record<string, unknown> => ({ syncer: { resources: { limits: { memory } }, ...more } });
  t.equal(await threshold({}), '0.63', "the chart's 240Mi: cap 120 MiB, (120 + 32) / 240, rounded down");
  t.equal(await threshold(limit('1Gi')), '0.53', '1Gi: (512 + 32) / 1024, rounded down');
  t.equal(await threshold(limit('512Mi')), '0.56', '512Mi: (256 + 32) / 512');
  t.equal(await threshold(limit('320Mi', { maxOldSpaceMiB: 300 })), '0.9', 'a cap near the limit: at most 0.9');
  t.equal(await threshold(limit('512M')), '0.8', 'a limit not in Mi or Gi: 0.8');
  t.equal(await threshold({ metrics: { prometheusRule: { alerts: { memoryNearLimit: { threshold: 0.75 } } } } }), '0.75', 'threshold, when set');
});

t.test('the schema refuses what Prometheus or the CRD would', async (t) => {
  const crd = crdFile('prometheusrules')[0] as unknown as { spec: { versions: { schema: { openAPIV3Schema: unknown } }[] } };
  const ruleSchema = (crd.spec.versions[0]?.schema.openAPIV3Schema ?? {}) as { properties: { spec: { properties: { groups: { items: { properties: { rules: { items: { properties: { for: { pattern: string } } } } } } } } } } };
  const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as { definitions: { promDuration: { pattern: string } } };
  t.equal(schema.definitions.promDuration.pattern, ruleSchema.properties.spec.properties.groups.items.properties.rules.items.properties.for.pattern, "durations: the CRD's own pattern");
  const alerts = (a: Record<string, unknown>): Record<string, unknown> => ({ metrics: { prometheusRule: { enabled: true, alerts: a } } });
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a duration in words', alerts({ down: { for: '5 minutes' } }), /at '\/metrics\/prometheusRule\/alerts\/down\/for': '5 minutes' does not match pattern/],
    ['units out of order', alerts({ absent: { for: '30m1h' } }), /at '\/metrics\/prometheusRule\/alerts\/absent\/for': '30m1h' does not match pattern/],
    ['a ratio above 1', alerts({ notSyncedRatio: { threshold: 5 } }), /at '\/metrics\/prometheusRule\/alerts\/notSyncedRatio\/threshold': maximum: got 5, want 1/],
    ['a lag of 0 s', alerts({ peerLagging: { thresholdSeconds: 0 } }), /at '\/metrics\/prometheusRule\/alerts\/peerLagging\/thresholdSeconds': exclusiveMinimum: got 0, want 0/],
    ['a memory share above 1', alerts({ memoryNearLimit: { threshold: 1.5 } }), /at '\/metrics\/prometheusRule\/alerts\/memoryNearLimit\/threshold': 'oneOf' failed/],
    ['a staleness of 0 s', alerts({ canaryNotRunning: { staleSeconds: 0 } }), /at '\/metrics\/prometheusRule\/alerts\/canaryNotRunning\/staleSeconds': minimum: got 0, want 1/],
    ['a misspelt alert', alerts({ notSynced: { threshold: 0.1 } }), /at '\/metrics\/prometheusRule\/alerts': additional properties 'notSynced' not allowed/],
    ['a runbook URL with its own anchor', { metrics: { prometheusRule: { runbookUrl: 'https://example.com/README.md#runbooks' } } }, /at '\/metrics\/prometheusRule\/runbookUrl': .* does not match pattern/],
    ['an alert label that is no label name', { metrics: { prometheusRule: { alertLabels: { 'team-name': 'gw' } } } }, /at '\/metrics\/prometheusRule\/alertLabels': additional properties 'team-name' not allowed/],
    ['a label value as a number', { metrics: { dashboard: { labelValue: 1 } } }, /at '\/metrics\/dashboard\/labelValue': got number, want string/],
  ];
  for (const [name, values, message] of cases) {
    const r = await helmTemplate({ ...RELEASE, values });
    t.not(r.code, 0, `${name}: refused`);
    t.match(r.stderr, message, `${name}: ${r.stderr.split('\n').find((l) => l.includes('at ')) ?? r.stderr}`);
  }
});

t.test('a NetworkPolicy that keeps Prometheus out of the ops port fails the render when a ServiceMonitor asks for scraping', async (t) => {
  const blocked = await helmTemplate({ ...RELEASE, values: { networkPolicy: { enabled: true }, metrics: { serviceMonitor: { enabled: true } } } });
  t.not(blocked.code, 0, 'refused');
  t.match(blocked.stderr, /metrics\.serviceMonitor\.enabled: the NetworkPolicy admits nobody to the ops port \(9090\), so Prometheus could never scrape the sidecars: set networkPolicy\.opsFrom/);
  const opsFrom = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];
  const admitted = await render({ ...RELEASE, values: { networkPolicy: { enabled: true, opsFrom }, metrics: { serviceMonitor: { enabled: true } } } });
  t.equal(admitted.filter((o) => o.kind === 'ServiceMonitor').length, 1, 'renders once opsFrom admits Prometheus');
  t.same(ofKind(admitted, 'NetworkPolicy')[0]?.spec?.ingress?.at(-1), { ports: [{ port: 9090, protocol: 'TCP' }], from: opsFrom }, 'whose rule the check found');
  t.equal((await helmTemplate({ ...RELEASE, values: { metrics: { serviceMonitor: { enabled: true } } } })).code, 0, 'no NetworkPolicy: nothing to check');
  t.equal((await helmTemplate({ ...RELEASE, values: { networkPolicy: { enabled: true } } })).code, 0, 'no ServiceMonitor: renders (NOTES warns, below)');
});

t.test('NOTES: the blocked ops port, a dashboard without its recording rules, alerts without a scrape job or a canary', async (t) => {
  const renderer = notesRenderer();
  t.teardown(() => renderer.remove());
  const warning = /WARNING: the NetworkPolicy admits nobody to the ops port \(9090\)/;
  t.match(await renderer.notes({ networkPolicy: { enabled: true } }), warning, 'pod annotations scraped through a closed port: warned');
  t.notMatch(await renderer.notes({ networkPolicy: { enabled: true, opsFrom: [{ ipBlock: { cidr: '10.0.0.0/8' } }] } }), warning, 'not once opsFrom is set');
  t.notMatch(await renderer.notes({ networkPolicy: { enabled: true }, metrics: { podAnnotations: false } }), warning, 'not without annotations');
  const dashboardOnly = await renderer.notes({ metrics: { dashboard: { enabled: true } } });
  t.match(dashboardOnly, /Grafana dashboard: ConfigMap apigw-apigw-syncer-dashboard in namespace apigw, label grafana_dashboard=1/);
  t.match(dashboardOnly, /panels whose description ends "\(recording rule\)" stay empty without the chart's\nrecording rules/);
  const rulesNoJob = await renderer.notes({ metrics: { prometheusRule: { enabled: true } } });
  t.match(rulesNoJob, /ApigwSyncerDown and ApigwSyncerAbsent are left out/);
  t.match(await renderer.notes(monitoringValues({ syncer: { canary: { enabled: false } } })), /The canary's alerts and recording rules are left out: the canary is off/);
  const all = await renderer.notes(monitoringValues());
  t.match(all, /runbooks: https:\/\/github\.com\/apigw-syncer\/apigw-syncer\/blob\/main\/README\.md#runbooks/);
  t.notMatch(all, /left out|stay empty|WARNING/, 'everything on: nothing to warn about');
});

t.test('helm lint --strict with every monitoring object on', async (t) => {
  const r = await helmLint({ ...RELEASE, values: monitoringValues({ metrics: { dashboard: { folder: 'Gateways' }, prometheusRule: { alertLabels: { team: 'gw' } } } }) });
  t.equal(r.code, 0, `${r.stdout}${r.stderr}`);
});

t.test('applied to a real API server with the prometheus-operator CRDs: strict validation accepts every object as rendered', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const admin = new KubeClient(cp.adminKubeConfig());
  for (const crd of [...crdFile('servicemonitors'), ...crdFile('prometheusrules')]) await admin.apply(crd);
  await waitFor(
    async () => {
      const r = await admin.send('GET', '/apis/monitoring.coreos.com/v1');
      const served = r.status === 200 ? (JSON.parse(r.body) as { resources: { kind: string }[] }).resources.map((x) => x.kind) : [];
      return served.includes('ServiceMonitor') && served.includes('PrometheusRule');
    },
    'the API server to serve ServiceMonitor and PrometheusRule',
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  // A fresh client: the first one may have cached discovery from before the CRDs.
  const client = new KubeClient(cp.adminKubeConfig());
  await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apigw' } });
  const objects = await render({ ...RELEASE, values: monitoringValues({ metrics: { dashboard: { folder: 'Gateways' }, prometheusRule: { labels: { release: 'prom' }, alertLabels: { team: 'gw' } } } }) });
  const monitoring = objects.filter((o) => o.kind === 'ServiceMonitor' || o.kind === 'PrometheusRule' || o.metadata.name.endsWith('-dashboard'));
  t.same(monitoring.map((o) => o.kind).sort(), ['ConfigMap', 'PrometheusRule', 'ServiceMonitor']);
  for (const o of monitoring) {
    const stored = await client.apply(o);
    t.same((stored as Record<string, unknown>)['spec'] ?? (stored as Record<string, unknown>)['data'], o['spec'] ?? o['data'], `${o.kind} ${o.metadata.name}: accepted and stored as rendered`);
  }

  // The validation has teeth: a misspelt field and a duration the CRD does not take are refused.
  const rule = monitoring.find((o) => o.kind === 'PrometheusRule');
  if (rule === undefined) throw new Error('no PrometheusRule');
  const withRules = (rules: readonly Record<string, unknown>[]): KubeObject => ({ ...rule, spec: { groups: [{ name: 'typo', rules }] } });
  await t.rejects(client.apply(withRules([{ alert: 'X', exprs: 'up == 0' }])), /exprs|field not declared in schema/, 'an unknown rule field is refused');
  await t.rejects(client.apply(withRules([{ alert: 'X', expr: 'up == 0', for: '30m1h' }])), /rules\[0\]\.for/, 'a duration out of order is refused');
});
