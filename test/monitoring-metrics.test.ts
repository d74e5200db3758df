// Every series the dashboard, the PrometheusRule and the README name is one the built sidecar
// really exports: the sidecar runs as a child process, as in its container (under a memory
// limit, in a cgroup of its own), with three peers (so per-peer series exist) and its canary on,
// writing through a keyvals relay that hands the key to every replica (as zone_sync would);
// checks that are Synced, NotSynced and refused give every family samples. What /metrics declares
// (its # TYPE lines, with the series a histogram is made of) must cover every name used; `up` is
// Prometheus's own, and recording rules resolve to the chart's. The failure message lists the
// names missing, and where each is used.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { allRules, dashboardQueries, readDashboard, renderRuleGroups } from './packaging/monitoring.js';
import { exposedNames } from './support/exposition.js';
import { KeyvalsRelay } from './support/keyvals-relay.js';
import { metricNames } from './support/promql-names.js';
import { startReplicas } from './support/replica-server.js';
import { repoRoot } from './support/repo-root.js';
import { peersEnv, sendCheck } from './support/sidecar-app.js';
import { MAIN_JS, startSidecarProcess } from './support/sidecar-process.js';
import { createMemoryCgroup } from './support/memory-cgroup.js';
import { waitFor } from './support/wait.js';

/** Series Prometheus makes for every target; no exporter has them. */
const MADE_BY_PROMETHEUS = new Set(['up']);

/** The sidecar's metric names the README mentions (not wildcards such as process_*, nor parts of recording-rule names or anchors). */
function readmeNames(readme: string): { metrics: Set<string>; recorded: Set<string> } {
  return {
    metrics: new Set([...readme.matchAll(/(?<![\w:#-])((?:syncer|process|nodejs)_[a-z0-9_]+)(?![\w:*-])/g)].map((m) => m[1]!)),
    recorded: new Set([...readme.matchAll(/(?<![\w:])([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)(?![\w:])/g)].map((m) => m[1]!)),
  };
}

t.test('every metric the dashboard, the rules and the README use is in the live /metrics of the built sidecar', async (t) => {
  const replicas = await startReplicas(3, { net: '127.0.33.', first: 10, port: 18161 });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const relay = await KeyvalsRelay.start((write) => {
    for (const r of replicas) r.give(write.key);
    return 201;
  });
  t.teardown(() => relay.close());
  const cgroup = await createMemoryCgroup('apigw-metrics', 512 * 1024 * 1024);
  t.teardown(() => cgroup.remove());
  const sidecar = await startSidecarProcess(
    {
      POD_NAME: 'pod-self',
      SYNCER_PEERS: peersEnv(replicas),
      SYNCER_HARD_TIMEOUT_MS: '600',
      SYNCER_RETRY_DELAY_MS: '5',
      SYNCER_CANARY_INTERVAL_MS: '1000',
      SYNCER_CANARY_TIMEOUT_MS: '500',
      SYNCER_CANARY_URL: relay.url,
    },
    { argv: cgroup.wrap([process.execPath, MAIN_JS]) },
  );
  t.teardown(() => sidecar.stop());

  for (const r of replicas) r.give('held-by-all');
  t.equal((await sidecar.check('held-by-all')).tokenStatus, 'Synced', 'a check every peer answers 200: per-peer delays');
  replicas[0]?.give('held-by-one');
  t.equal((await sidecar.check('held-by-one')).tokenStatus, 'NotSynced', 'a check two peers miss: per-peer failures');
  t.equal((await sendCheck(sidecar.apiUrl, {})).status, 400, 'a request without a token: a refusal');
  // The second canary write comes an interval after the first, whose run (500 ms at most) has
  // ended by then: its series are there. A sidecar without the canary never writes: the names
  // check below then lists what is missing.
  const canaryRan = await waitFor(() => relay.writes.length >= 2, 'two canary writes', { timeoutMs: 15_000 }).then(
    () => true,
    () => false,
  );
  const text = await (await fetch(`${sidecar.opsUrl}/metrics`)).text();
  const exposed = exposedNames(text);
  t.ok(exposed.has('syncer_checks_total') && exposed.has('process_resident_memory_bytes'), `/metrics declares ${exposed.size} series names`);

  const groups = await renderRuleGroups();
  const recordedBy = new Map(allRules(groups).flatMap((r) => (r.record === undefined ? [] : [[r.record, r.expr] as const])));
  const readme = readmeNames(readFileSync(join(repoRoot(), 'README.md'), 'utf8'));
  t.same([...readme.recorded].filter((n) => !recordedBy.has(n)), [], "the README's recording rules are the chart's");

  const users = new Map<string, Set<string>>();
  const use = (name: string, by: string): void => void users.set(name, (users.get(name) ?? new Set()).add(by));
  // A recording rule stands for the series its expression reads, down to the sidecar's own.
  const resolve = (expr: string, by: string): void => {
    for (const name of metricNames(expr)) {
      const recorded = recordedBy.get(name);
      if (recorded === undefined) use(name, by);
      else resolve(recorded, by);
    }
  };
  for (const q of dashboardQueries(readDashboard())) resolve(q.expr, 'the dashboard');
  for (const rule of allRules(groups)) resolve(rule.expr, 'the PrometheusRule');
  for (const name of readme.metrics) use(name, 'the README');
  t.ok(users.size > 20, `${users.size} series names used`);

  const missing = [...users].filter(([name]) => !exposed.has(name) && !MADE_BY_PROMETHEUS.has(name)).map(([name, by]) => `${name} (${[...by].join(', ')})`);
  const why = `used but not exported by the running sidecar${canaryRan ? '' : ' (whose canary never wrote)'}:\n  ${missing.join('\n  ')}`;
  t.same(missing, [], missing.length === 0 ? 'every one is exported' : why);
});
