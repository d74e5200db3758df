// The chart's alerts proven with promtool, the way kubernetes-mixin proves its own: the
// PrometheusRule rendered by the real helm is written out as a rules file, `promtool check rules`
// accepts it (every linter on), and the unit tests in test/alerts/ (promtool's own format) run on
// it with `promtool test rules`. Every alert has a test group that fires it (and shows it pending
// first), one that keeps it silent on a healthy series, one on a short blip. The tests have
// teeth: rules that never fire fail every "fires" group, and rules without their "for" and
// thresholds fire on every blip. The canary's alerts follow its interval: test/alerts/canary-every-10-minutes/
// runs on a chart with a rare canary, and fails on the default rules. Each alert's runbook_url
// points at a README section.
import t from 'tap';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { allPanels, allRules, readDashboard, renderRuleGroups, writeRulesFile, type RuleGroup } from './packaging/monitoring.js';
import { checkRules, testRules } from './support/promtool.js';
import { repoRoot } from './support/repo-root.js';

const ALERTS_DIR = join(repoRoot(), 'test', 'alerts');
const TEST_FILES = readdirSync(ALERTS_DIR).filter((f) => f.endsWith('.yaml')).sort();
/** Tests of the canary's alerts on a chart whose canary runs every 10 minutes, and that chart's values. */
const RARE_CANARY_DIR = join(ALERTS_DIR, 'canary-every-10-minutes');
const RARE_CANARY_VALUES = { syncer: { canary: { intervalMs: 600_000, timeoutMs: 5_000 } } };
const README = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
const RUNBOOK_URL = 'https://github.com/apigw-syncer/apigw-syncer/blob/main/README.md';

interface TestGroup {
  readonly name: string;
  readonly alert_rule_test?: readonly { readonly alertname: string; readonly eval_time: string; readonly exp_alerts?: readonly unknown[] }[];
}

const testGroups = new Map<string, TestGroup[]>(
  TEST_FILES.map((f) => [f, (parse(readFileSync(join(ALERTS_DIR, f), 'utf8')) as { tests: TestGroup[] }).tests]),
);

const scratch = mkdtempSync(join(tmpdir(), 'apigw-alerts-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
let runs = 0;

/** Runs every test file of `from` on `groups`, written as rules.yaml beside copies of them; `run`: only the groups it matches. */
async function promtoolTest(groups: readonly RuleGroup[], run?: string, from = ALERTS_DIR): Promise<{ code: number; output: string }> {
  const dir = mkdtempSync(join(scratch, `run-${++runs}-`));
  writeRulesFile(dir, groups);
  const files = readdirSync(from).filter((f) => f.endsWith('.yaml'));
  for (const f of files) copyFileSync(join(from, f), join(dir, f));
  return testRules(
    files.map((f) => join(dir, f)),
    run,
  );
}

/** GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens. */
function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

const rendered = renderRuleGroups();

t.test('promtool check rules accepts the PrometheusRule as the chart renders it', async (t) => {
  const groups = await rendered;
  const rules = allRules(groups);
  const file = writeRulesFile(scratch, groups, 'rendered.yaml');
  const check = await checkRules([file]);
  t.equal(check.code, 0, check.code === 0 ? 'promtool check rules --lint=all --lint-fatal' : check.output);
  t.match(check.output, new RegExp(`SUCCESS: ${rules.length} rules found`), 'every rule read');
  t.comment(check.output.trim());

  // The same with every value a team may change set: thresholds, labels, a scrape job of its own.
  const tuned = await renderRuleGroups({
    metrics: {
      serviceMonitor: { enabled: false },
      prometheusRule: {
        scrapeJob: 'kubernetes-pods',
        alertLabels: { team: 'gateway', severity: 'ignored' },
        alerts: { notSyncedRatio: { threshold: 0.2, for: '1h30m', severity: 'page' }, peerLagging: { thresholdSeconds: 0.25 }, canaryNotRunning: { staleSeconds: 90 } },
      },
    },
  });
  const tunedCheck = await checkRules([writeRulesFile(scratch, tuned, 'tuned.yaml')]);
  t.equal(tunedCheck.code, 0, `tuned values${tunedCheck.code === 0 ? '' : `: ${tunedCheck.output}`}`);

  // The check has teeth: an expression that does not parse, a template that does not either.
  const broken = groups.map((g) => ({ ...g, rules: g.rules.map((r) => (r.alert === 'ApigwSyncerPeerLagging' ? { ...r, expr: `${r.expr} by (peer)` } : r)) }));
  const brokenCheck = await checkRules([writeRulesFile(scratch, broken, 'broken.yaml')]);
  t.not(brokenCheck.code, 0, 'a PromQL error is refused');
  t.match(brokenCheck.output, /"ApigwSyncerPeerLagging": could not parse expression/, 'naming the rule');
  const badTemplate = groups.map((g) => ({ ...g, rules: g.rules.map((r) => (r.alert === 'ApigwSyncerDown' ? { ...r, annotations: { ...r.annotations, summary: '{{ $labels.pod ' } } : r)) }));
  const templateCheck = await checkRules([writeRulesFile(scratch, badTemplate, 'bad-template.yaml')]);
  t.not(templateCheck.code, 0, 'a broken annotation template is refused');
});

t.test('every alert has groups that fire it, keep it silent on a healthy series, and on a blip', async (t) => {
  const alerts = allRules(await rendered).flatMap((r) => (r.alert === undefined ? [] : [r.alert]));
  t.ok(alerts.length >= 9, `${alerts.length} alerts rendered`);
  const tested = new Map<string, { fires: boolean; pendingFirst: boolean; healthy: boolean; blip: boolean }>();
  const unnamed: string[] = [];
  const firingWhereSilent: string[] = [];
  for (const [file, groups] of testGroups) {
    for (const g of groups) {
      const kind = /^(fires|healthy|blip): /.exec(g.name)?.[1];
      if (kind === undefined) unnamed.push(`${file}: ${g.name}`);
      for (const c of g.alert_rule_test ?? []) {
        const seen = tested.get(c.alertname) ?? { fires: false, pendingFirst: false, healthy: false, blip: false };
        const firing = (c.exp_alerts ?? []).length > 0;
        if (kind === 'fires' && firing) seen.fires = true;
        if (kind === 'fires' && !firing) seen.pendingFirst = true;
        if (kind === 'healthy' && !firing) seen.healthy = true;
        if (kind === 'blip' && !firing) seen.blip = true;
        if (kind !== 'fires' && firing) firingWhereSilent.push(`${file}: "${g.name}" at ${c.eval_time}`);
        tested.set(c.alertname, seen);
      }
    }
  }
  t.same(unnamed, [], 'every group says what it shows (fires:, healthy: or blip:)');
  t.same(firingWhereSilent, [], 'healthy and blip groups expect silence only');
  t.same([...tested.keys()].sort(), [...alerts].sort(), 'the tests cover exactly the rendered alerts');
  for (const alert of alerts) {
    t.same(tested.get(alert), { fires: true, pendingFirst: true, healthy: true, blip: true }, `${alert}: fires (pending before its "for"), silent when healthy and on a blip`);
  }
});

t.test('promtool test rules: every unit test passes on the rendered rules', async (t) => {
  const r = await promtoolTest(await rendered);
  t.equal(r.code, 0, r.code === 0 ? 'promtool test rules' : r.output);
  const groups = [...testGroups.values()].reduce((n, g) => n + g.length, 0);
  const cases = [...testGroups.values()].flat().reduce((n, g) => n + (g.alert_rule_test ?? []).length, 0);
  t.equal((r.output.match(/^ {2}SUCCESS$/gm) ?? []).length, TEST_FILES.length, `every file passes (${TEST_FILES.length} files, ${groups} groups, ${cases} alert checks)`);
});

t.test('the unit tests have teeth', async (t) => {
  const groups = await rendered;
  const names = (kind: string): string[] => [...testGroups.values()].flat().filter((g) => g.name.startsWith(`${kind}: `)).map((g) => g.name);

  // Rules whose alerts never fire: every "fires" group fails, by name.
  const silent = groups.map((g) => ({ ...g, rules: g.rules.map((r) => (r.alert === undefined ? r : { ...r, expr: 'vector(1) == 0' })) }));
  const none = await promtoolTest(silent, '^fires: ');
  t.not(none.code, 0, 'rules that never fire fail the "fires" groups');
  for (const name of names('fires')) t.ok(none.output.includes(`name: ${name},`), `failed: ${name}`);

  // Rules with no "for" and thresholds at their floor: every blip fires, so every blip group fails.
  const eager = await renderRuleGroups({
    metrics: {
      prometheusRule: {
        alerts: {
          notSyncedRatio: { for: '0s', threshold: 0 },
          peerLagging: { for: '0s', thresholdSeconds: 0.01 },
          peerFailing: { for: '0s', threshold: 0 },
          canaryFailing: { for: '0s', threshold: 0 },
          canaryWriteFailing: { for: '0s', threshold: 0 },
          canaryNotRunning: { for: '0s', staleSeconds: 60 },
          discoveryNotSynced: { for: '0s' },
          overloaded: { for: '0s', threshold: 0 },
          probesUnexpected: { for: '0s', threshold: 0 },
          unexpectedErrors: { for: '0s' },
          memoryNearLimit: { for: '0s', threshold: 0 },
          down: { for: '0s' },
          absent: { for: '0s' },
        },
      },
    },
  });
  // Unexpected errors fire on any one already (no "for", no threshold): their blip is a count
  // that does not grow, which a rule reading the count as a level instead of its increase fires on.
  const level = eager.map((g) => ({
    ...g,
    rules: g.rules.map((r) => (r.alert === 'ApigwSyncerUnexpectedErrors' ? { ...r, expr: 'max by (namespace, job, pod, source) (syncer_unexpected_errors_total) > 0' } : r)),
  }));
  const jumpy = await promtoolTest(level, '^blip: ');
  t.not(jumpy.code, 0, 'rules without "for" and thresholds fail the blip groups');
  for (const name of names('blip')) t.ok(jumpy.output.includes(`name: ${name},`), `failed: ${name}`);
});

t.test('the canary alerts follow the canary: a canary every 10 minutes is watched over its own windows', async (t) => {
  const rare = await renderRuleGroups(RARE_CANARY_VALUES);
  const check = await checkRules([writeRulesFile(scratch, rare, 'rare-canary.yaml')]);
  t.equal(check.code, 0, check.code === 0 ? 'promtool check rules' : check.output);
  const ok = await promtoolTest(rare, undefined, RARE_CANARY_DIR);
  t.equal(ok.code, 0, ok.code === 0 ? 'promtool test rules: fires, healthy, blip' : ok.output);
  const groups = (parse(readFileSync(join(RARE_CANARY_DIR, 'canary.yaml'), 'utf8')) as { tests: TestGroup[] }).tests;
  const alerts = new Set(groups.flatMap((g) => (g.alert_rule_test ?? []).map((c) => c.alertname)));
  t.same([...alerts].sort(), ['ApigwSyncerCanaryFailing', 'ApigwSyncerCanaryNotRunning', 'ApigwSyncerCanaryWriteFailing'], 'every canary alert');

  // On the default rules (a canary every 10 s) every group goes wrong: a canary running every 10
  // minutes looks stopped, and a replica it no longer reaches is never told (5-minute windows
  // hold one run or none, and a ratio of nothing ends the alert's "for").
  const wrong = await promtoolTest(await rendered, undefined, RARE_CANARY_DIR);
  t.not(wrong.code, 0, 'the default rules fail them');
  for (const { name } of groups) t.ok(wrong.output.includes(`name: ${name},`), `failed on the default rules: ${name}`);
});

t.test('every alert has a summary, a description and a runbook in the README', async (t) => {
  const alerts = allRules(await rendered).filter((r) => r.alert !== undefined);
  const runbooks = README.split(/^## /m).find((s) => s.startsWith('Runbooks'));
  if (runbooks === undefined) throw new Error('README has no "## Runbooks" section');
  const sections = new Map(runbooks.split(/^### /m).slice(1).map((s) => [githubAnchor(s.split('\n')[0] ?? ''), s] as const));
  const panels = allPanels(readDashboard()).map((p) => p.title);
  for (const rule of alerts) {
    const a = rule.annotations ?? {};
    t.ok(a['summary'] && a['description'], `${rule.alert}: summary and description`);
    const url = a['runbook_url'] ?? '';
    t.equal(url, `${RUNBOOK_URL}#${(rule.alert ?? '').toLowerCase()}`, `${rule.alert}: runbook_url is the README's, with the alert's own anchor`);
    const section = sections.get(url.split('#')[1] ?? '');
    if (section === undefined) {
      t.fail(`${rule.alert}: no "### ${rule.alert}" under the README's Runbooks`);
      continue;
    }
    for (const part of ['**Means**', '**Confirm**', '**Do**']) t.ok(section.includes(part), `${rule.alert}'s runbook: ${part}`);
    t.match(section, /`peers`/, `${rule.alert}'s runbook: what the peers command shows`);
    t.match(section, /\blog\b/, `${rule.alert}'s runbook: what the sidecar's log says`);
    const named = panels.filter((p) => section.includes(`“${p}”`));
    t.ok(named.length > 0, `${rule.alert}'s runbook names a dashboard panel (${named.join(', ')})`);
    t.match(rule.labels?.['severity'], /^(critical|warning)$/, `${rule.alert}: a severity`);
  }
});
