// The chart's monitoring objects as the tests read them: the PrometheusRule's rule groups (a
// Prometheus rules file once written out) and the Grafana dashboard's queries, with Grafana's
// variables replaced by values a rules file accepts.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CHART_DIR, render, type KubeObject } from './helm.js';

export interface Rule {
  readonly record?: string;
  readonly alert?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly Rule[];
}

/** Release and namespace of every monitoring render: the alert tests' series carry their job and namespace. */
export const RELEASE = { release: 'apigw', namespace: 'apigw' } as const;
/** The job Prometheus Operator gives the sidecars' series: the peer Service's name. */
export const SCRAPE_JOB = 'apigw-apigw-syncer-peers';

/** The ServiceMonitor, the PrometheusRule and the dashboard turned on, plus `values`. */
export function monitoringValues(values: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  const metrics = (values['metrics'] ?? {}) as Record<string, Record<string, unknown>>;
  return {
    ...values,
    metrics: {
      ...metrics,
      serviceMonitor: { enabled: true, ...metrics['serviceMonitor'] },
      prometheusRule: { enabled: true, ...metrics['prometheusRule'] },
      dashboard: { enabled: true, ...metrics['dashboard'] },
    },
  };
}

export function ruleGroupsOf(objects: readonly KubeObject[]): RuleGroup[] {
  const rules = objects.filter((o) => o.kind === 'PrometheusRule');
  const only = rules[0];
  if (rules.length !== 1 || only === undefined) throw new Error(`expected one PrometheusRule, rendered ${rules.length}`);
  return (only['spec'] as { groups: RuleGroup[] }).groups;
}

/** Renders the chart (monitoringValues) and returns its PrometheusRule's groups. */
export async function renderRuleGroups(values: Readonly<Record<string, unknown>> = {}): Promise<RuleGroup[]> {
  return ruleGroupsOf(await render({ ...RELEASE, values: monitoringValues(values) }));
}

/** Writes groups as a Prometheus rules file (the PrometheusRule's spec is one) and returns its path. */
export function writeRulesFile(dir: string, groups: readonly RuleGroup[], name = 'rules.yaml'): string {
  const path = join(dir, name);
  writeFileSync(path, stringify({ groups }));
  return path;
}

export const allRules = (groups: readonly RuleGroup[]): Rule[] => groups.flatMap((g) => [...g.rules]);

// ---- the Grafana dashboard ------------------------------------------------------------------

export const DASHBOARD_PATH = join(CHART_DIR, 'files', 'grafana-dashboard.json');

export interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly description?: string;
  readonly targets?: readonly { readonly expr: string; readonly legendFormat?: string; readonly refId: string }[];
  readonly panels?: readonly Panel[];
}

export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly { readonly name: string; readonly type: string; readonly query: unknown; readonly allValue?: string }[] };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;
}

/** Every panel, those inside collapsed rows included. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** What each of Grafana's variables stands for in a query that must parse as PromQL. */
const VARIABLE_VALUES: Readonly<Record<string, string>> = {
  namespace: RELEASE.namespace,
  job: SCRAPE_JOB,
  pod: '.*',
  __rate_interval: '5m',
  __interval: '1m',
  __range: '1h',
};

/** `query` with $name and ${name} replaced; throws on a variable it does not know. */
function substituteVariables(query: string): string {
  return query.replace(/\$(?:\{(\w+)\}|(\w+))/g, (_all, braced: string | undefined, plain: string | undefined) => {
    const name = braced ?? plain ?? '';
    const value = VARIABLE_VALUES[name];
    if (value === undefined) throw new Error(`unknown dashboard variable $${name} in ${query}`);
    return value;
  });
}

export interface DashboardQuery {
  readonly where: string;
  /** With the variables substituted. */
  readonly expr: string;
}

/** Every panel target, and the selector inside each label_values() variable query. */
export function dashboardQueries(d: Dashboard): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: substituteVariables(t.expr) });
  }
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const text = typeof v.query === 'string' ? v.query : (v.query as { query: string }).query;
    const m = /^label_values\((.*),\s*(\w+)\)$/.exec(text);
    if (!m) throw new Error(`variable ${v.name}: not a label_values(selector, label) query: ${text}`);
    out.push({ where: `variable $${v.name}`, expr: substituteVariables(m[1]!) });
  }
  return out;
}
