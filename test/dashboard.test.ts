// The Grafana dashboard (helm/apigw-syncer/files/grafana-dashboard.json, one file: imported by
// hand, or shipped by the chart in a ConfigMap for Grafana's dashboard sidecar). Every query
// parses — each panel's, and each variable's selector, with Grafana's variables substituted,
// checked by the real promtool as a recording rule —, every series it reads is one of the
// sidecar's (monitoring-metrics.test.ts holds those against a running sidecar) or one of the
// chart's recording rules, each query stays within the selected apigw, and the panels the
// operators need are there.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { render } from './packaging/helm.js';
import { ofKind } from './packaging/k8s-objects.js';
import { DASHBOARD_PATH, RELEASE, allPanels, allRules, dashboardQueries, monitoringValues, readDashboard, renderRuleGroups, writeRulesFile, type Panel } from './packaging/monitoring.js';
import { metricNames } from './support/promql-names.js';
import { checkRules } from './support/promtool.js';

const dashboard = readDashboard();
const panels = allPanels(dashboard);
const rawTargets = panels.flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p, expr: target.expr, legend: target.legendFormat ?? '' })));

t.test('variables: a Prometheus data source, then namespace, job and pod', async (t) => {
  const vars = dashboard.templating.list;
  t.same(
    vars.map((v) => [v.name, v.type]),
    [
      ['datasource', 'datasource'],
      ['namespace', 'query'],
      ['job', 'query'],
      ['pod', 'query'],
    ],
  );
  t.equal(vars[0]?.query, 'prometheus', 'the data source variable lists Prometheus data sources');
  t.equal(vars[3]?.allValue, '.*', 'pod: "All" matches every pod');
  t.equal(dashboard.uid, 'apigw-syncer', 'a fixed uid: links and the sidecar keep one dashboard');
  const sources = new Set(JSON.stringify(dashboard).match(/"uid":\s*"[^"]*"/g) ?? []);
  t.same([...sources].filter((s) => !/"uid":\s*"(apigw-syncer|\$\{datasource\}|-- Grafana --)"/.test(s)), [], 'every query uses the data source variable (no data source uid of one Grafana)');
});

t.test('the panels operators need are there', async (t) => {
  const find = (what: string, test: (expr: string, legend: string, panel: Panel) => boolean): void => {
    const hits = rawTargets.filter(({ expr, legend, panel }) => test(expr, legend, panel));
    t.ok(hits.length > 0, `${what}: ${hits.map((h) => `"${h.panel.title}"`).join(', ') || 'missing'}`);
  };
  const has = (expr: string, ...parts: string[]): boolean => parts.every((p) => expr.includes(p));
  find('check rate by verdict', (e) => has(e, 'by (verdict)', 'namespace_job_pod_verdict:syncer_checks:rate5m'));
  find('the Synced ratio', (e) => has(e, 'verdict="Synced"', '/'));
  find('check duration p50', (e) => has(e, 'histogram_quantile(0.5,', 'syncer_check_duration_seconds_bucket'));
  find('check duration p99', (e) => has(e, 'histogram_quantile(0.99,', 'syncer_check_duration_seconds_bucket'));
  find('replication delay p99 per peer', (e, l) => has(e, 'syncer_peer_replication_delay_seconds:histogram_quantile', 'quantile="0.99"') && l.includes('{{peer}}'));
  find('replication delay heatmap', (e, _l, p) => p.type === 'heatmap' && has(e, 'syncer_peer_replication_delay_seconds_bucket', 'by (le)'));
  find('checks failing per peer', (e, l) => has(e, 'syncer_peer_check_outcomes_total', 'by (peer, outcome)') && l.includes('{{peer}}'));
  find('the canary per peer', (e, l) => has(e, 'syncer_canary_peer_failed:ratio_rate5m') && l.includes('{{peer}}'));
  find('the canary delay per peer', (e) => has(e, 'syncer_canary_peer_delay_seconds', 'by (peer)'));
  find('probes by result', (e) => has(e, 'syncer_probes_total', 'by (result)'));
  find('rejections by reason', (e) => has(e, 'syncer_checks_rejected_total', 'by (reason)'));
  find('discovery state', (e) => has(e, 'syncer_discovery_state', 'by (state)'));
  find('peer count', (e) => has(e, 'syncer_peers{'));
  find('event-loop lag', (e) => has(e, 'nodejs_eventloop_lag_p99_seconds'));
  find('CPU', (e) => has(e, 'rate(process_cpu_seconds_total'));
  find('unexpected errors by source', (e, l) => has(e, 'increase(syncer_unexpected_errors_total', 'by (pod, source)') && l.includes('{{source}}'));
  const memory = panels.find((p) => (p.targets ?? []).some((x) => x.expr.includes('process_resident_memory_bytes')));
  t.ok(memory?.targets?.some((x) => x.expr.includes('syncer_memory_limit_bytes')), `memory against the limit, in one panel ("${memory?.title}")`);
  for (const p of panels) if (p.type !== 'row') t.ok(p.description, `"${p.title}" says what it shows`);
  t.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
});

t.test('every query parses (promtool check rules, each one a recording rule)', async (t) => {
  const queries = dashboardQueries(dashboard);
  t.ok(queries.length > 25, `${queries.length} queries`);
  const dir = mkdtempSync(join(tmpdir(), 'apigw-dashboard-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const asRules = (exprs: readonly string[]): string => writeRulesFile(dir, [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}:expr`, expr })) }], `q${exprs.length}.yaml`);
  const r = await checkRules([asRules(queries.map((q) => q.expr))]);
  t.equal(r.code, 0, r.code === 0 ? 'promtool check rules' : `promtool:\n${r.output}\n${queries.map((q, i) => `query_${i}: ${q.where}`).join('\n')}`);
  t.match(r.output, new RegExp(`SUCCESS: ${queries.length} rules found`));
  // The check has teeth: a query Grafana would send but Prometheus cannot parse.
  const broken = await checkRules([asRules([...queries.map((q) => q.expr), 'sum by (pod) (rate(syncer_checks_total[5m])']) ]);
  t.not(broken.code, 0, 'an unbalanced query is refused');
});

t.test('every query reads only the sidecar\'s series or the chart\'s recording rules, within the selected apigw', async (t) => {
  const recorded = new Set(allRules(await renderRuleGroups()).flatMap((r) => (r.record === undefined ? [] : [r.record])));
  const queries = dashboardQueries(dashboard);
  const read = queries.flatMap(({ where, expr }) => metricNames(expr).map((name) => ({ where, name })));
  t.ok(read.length >= queries.length, `${read.length} series read by ${queries.length} queries`);
  t.same(
    read.filter(({ name }) => !recorded.has(name) && !/^(syncer|process|nodejs)_/.test(name)),
    [],
    'each is a sidecar metric (syncer_*, process_*, nodejs_*) or a recording rule of the chart',
  );
  // Each selector keeps to the chosen namespace and job; raw series also to the chosen pods.
  const unscoped: string[] = [];
  for (const { panel, expr } of rawTargets) {
    for (const m of expr.matchAll(/([A-Za-z_:][\w:]*)\{([^}]*)\}/g)) {
      const [, name = '', matchers = ''] = m;
      const scoped = matchers.includes('namespace="$namespace"') && matchers.includes('job="$job"') && (recorded.has(name) || matchers.includes('pod=~"$pod"'));
      if (!scoped) unscoped.push(`"${panel.title}": ${name}{${matchers}}`);
    }
    if (/\b(syncer|process|nodejs)_\w+(?!\w|\{)/.test(expr.replace(/([A-Za-z_:][\w:]*)\{[^}]*\}/g, ''))) unscoped.push(`"${panel.title}": a selector without matchers`);
  }
  t.same(unscoped, [], 'every selector within $namespace and $job (and $pod for the sidecar\'s own series)');
});

t.test('the series-name reader tells names from functions, keywords, labels, strings and durations', async (t) => {
  const cases: [string, string[]][] = [
    ['sum by (verdict) (rate(syncer_checks_total{job="a:b", le="0.5"}[5m]))', ['syncer_checks_total']],
    ['histogram_quantile(0.99, sum(rate(x_bucket[1m])) by (le)) > 1e-05', ['x_bucket']],
    ['a / on (pod) group_left (node) b offset 5m or vector(0) and bool_metric', ['a', 'b', 'bool_metric']],
    ['time() - max without (instance) (ns:rec:rate5m{pod=~"$pod"} > 0) unless absent(up)', ['ns:rec:rate5m', 'up']],
    ['count(rate(c_total[5m:30s] @ 100)) == bool 0 # a comment naming fake_metric', ['c_total']],
  ];
  for (const [expr, names] of cases) t.same(metricNames(expr), names, expr);
});

t.test('a panel says "(recording rule)" exactly when it reads one', async (t) => {
  const recorded = new Set(allRules(await renderRuleGroups()).flatMap((r) => (r.record === undefined ? [] : [r.record])));
  const wrong = panels
    .filter((p) => p.type !== 'row')
    .filter((p) => (p.targets ?? []).some((x) => metricNames(x.expr).some((n) => recorded.has(n))) !== (p.description ?? '').endsWith('(recording rule).'))
    .map((p) => p.title);
  t.same(wrong, []);
});

t.test('the chart ships the same JSON in a ConfigMap for Grafana\'s dashboard sidecar, off by default', async (t) => {
  const file = readFileSync(DASHBOARD_PATH, 'utf8');
  const dashboardsOf = async (values: Record<string, unknown>): Promise<ReturnType<typeof ofKind<'ConfigMap'>>> =>
    ofKind(await render({ ...RELEASE, values }), 'ConfigMap').filter((c) => c.metadata?.name === 'apigw-apigw-syncer-dashboard');
  t.same(await dashboardsOf({}), [], 'off by default');
  t.same(await dashboardsOf({ syncer: { enabled: false }, metrics: { dashboard: { enabled: true } } }), [], 'nothing to show without the sidecar');

  const [plain] = await dashboardsOf(monitoringValues());
  t.equal(plain?.data?.['apigw-syncer.json'], file.replace(/\n$/, ''), 'the data is files/grafana-dashboard.json, byte for byte');
  t.equal(plain?.metadata?.labels?.['grafana_dashboard'], '1', "kube-prometheus-stack's sidecar label");
  t.same(plain?.metadata?.annotations, undefined, 'no folder annotation unless a folder is given');
  t.equal(plain?.metadata?.namespace, 'apigw', "in the release's namespace");

  const [custom] = await dashboardsOf(monitoringValues({ metrics: { dashboard: { label: 'example.com/dashboard', labelValue: 'apigw', folder: 'Gateways', folderAnnotation: 'k8s-sidecar-target-directory', namespace: 'grafana' } } }));
  t.equal(custom?.metadata?.labels?.['example.com/dashboard'], 'apigw', 'label and value configurable');
  t.notOk('grafana_dashboard' in (custom?.metadata?.labels ?? {}), 'the default label is not added beside it');
  t.same(custom?.metadata?.annotations, { 'k8s-sidecar-target-directory': 'Gateways' }, 'folder through the configured annotation');
  t.equal(custom?.metadata?.namespace, 'grafana', "in Grafana's namespace when asked");
  t.ok(JSON.parse(custom?.data?.['apigw-syncer.json'] ?? 'null'), 'the data parses as JSON');
});
