// The bench in its quick form: it runs on real nginx peers, ends by itself, and produces every
// figure as a finite number. No timing is asserted here: timing goals live in the bench.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Report } from './bench/report.js';
import { nginxMissing } from './support/nginx.js';
import { describeExit, runTracked } from './support/processes.js';
import { repoRoot } from './support/repo-root.js';
import { requirePart } from './support/required.js';
import { toolPaths } from './support/tools.js';

t.test('npm run bench, quick: every figure, as a markdown table and a JSON file', async (t) => {
  requirePart(nginxMissing());
  toolPaths(); // the control plane, for the kubernetes-mode figures: fails, naming what to build, when missing
  const r = await runTracked(process.execPath, [join(repoRoot(), 'dist', 'test', 'bench', 'bench.js')], { env: { ...process.env, BENCH_QUICK: '1' }, timeoutMs: 280_000 });
  t.equal(r.exit.code, 0, `the bench ${describeExit(r.exit)}: ${r.stderr.slice(-2000)}`);
  const path = /^JSON: (.+)$/m.exec(r.stdout)?.[1];
  t.ok(path, 'it prints where the JSON went');
  if (path === undefined) return;
  t.teardown(() => rmSync(path, { force: true }));
  const report = JSON.parse(readFileSync(path, 'utf8')) as Report;
  t.same(Object.keys(report.machine).sort(), ['cores', 'cpu', 'loadAfter', 'loadBefore', 'node'], 'the machine it ran on');
  t.ok(Object.keys(report.settings).length > 0, 'and its settings');
  const figures = new Set(report.rows.map((row) => row.figure));
  for (const figure of [
    'CPU per check, saturated',
    'checks/s at saturation',
    'one at a time p50',
    'one at a time p99',
    'one nginx, single probe p50',
    'detection lag p99 (lags 5–100 ms)',
    'probes per peer per check',
    'idle RSS before the burst (fresh, no check yet)',
    'idle RSS after 100 checks + 2 s, static discovery (floor: bare server)',
    'idle RSS after 100 checks + 2 s, kubernetes discovery (floor: bare server)',
    'start → /readyz 200, static (floor: bare server, start → answering)',
    'start → /readyz 200, kubernetes (API server answering)',
    'production files (what the image copies)',
    'one at a time p50 of a 400 refusal (the hop alone)',
  ]) {
    t.ok(figures.has(figure), `figure "${figure}"`);
  }
  t.ok([...figures].some((f) => f.startsWith('peak RSS')), 'peak RSS');
  t.ok([...figures].some((f) => f.startsWith('CPU per check, paced')), 'CPU per check at a fixed rate');
  t.ok([...figures].some((f) => f.startsWith('repeat check of a Synced token')), 'repeat checks beside a 400 refusal');
  t.ok([...figures].some((f) => f.startsWith('CPU per check, https vs http (same run)')), 'what TLS costs a check, beside http');
  t.same([...new Set(report.rows.filter((row) => row.figure === 'CPU per check, saturated').map((row) => row.peers))], [1, 3], 'quick: sizes 1 and 3');
  for (const row of report.rows) {
    for (const value of [row.floor, ...Object.values(row.values)]) {
      if (value !== null) t.ok(Number.isFinite(value), `${row.figure} (${row.peers ?? '-'} peers): ${value}`);
    }
  }
  t.match(r.stdout, /^\| figure \| peers \| unit \| floor \| A \| A\/floor \| target \| met A \|$/m, 'the markdown table');
});

t.test('npm run bench:fanout, shortest: two builds in alternating rounds, each figure per round and build', async (t) => {
  requirePart(nginxMissing());
  const bundle = join(repoRoot(), 'dist', 'bundle', 'apigw-syncer.mjs');
  // The same build twice is enough to prove the rounds, the rotation and the paired ratios.
  const r = await runTracked(process.execPath, [join(repoRoot(), 'dist', 'test', 'bench', 'fanout-ab.js'), bundle, bundle], {
    env: { ...process.env, BENCH_SIZES: '1', BENCH_ROUNDS: '2', BENCH_SECONDS: '1' },
    timeoutMs: 120_000,
  });
  t.equal(r.exit.code, 0, `the A/B ${describeExit(r.exit)}: ${r.stderr.slice(-2000)}`);
  const path = /^JSON: (.+)$/m.exec(r.stdout)?.[1];
  t.ok(path, 'it prints where the JSON went');
  if (path === undefined) return;
  t.teardown(() => rmSync(path, { force: true }));
  const report = JSON.parse(readFileSync(path, 'utf8')) as { builds: Record<string, string>; results: Array<{ peers: number; rounds: Array<Record<string, Record<string, number>>> }> };
  t.same(Object.keys(report.builds), ['A', 'B'], 'the builds, labelled in the order given');
  t.same(report.results.map((x) => x.peers), [1], 'the size asked for');
  const rounds = report.results[0]?.rounds ?? [];
  t.equal(rounds.length, 2, 'the rounds asked for');
  for (const round of rounds) {
    t.same(Object.keys(round).sort(), ['A', 'B', 'floor'], 'each round measures the floor and every build');
    for (const figures of Object.values(round)) for (const v of Object.values(figures)) t.ok(Number.isFinite(v) && v > 0, `a finite positive figure: ${v}`);
  }
  t.match(r.stdout, /A\/B \d+\.\d{3} \(per-round median\)/, 'the paired ratio against the last build');
});
