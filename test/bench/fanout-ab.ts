// `npm run bench:fanout -- [program …]`: the sidecar's own CPU per check, saturated and paced, of
// two or more builds side by side, in alternating rounds, each figure the median of its rounds.
//
// The full bench measures each build once per size, one after the other: on a shared machine a
// burst of load elsewhere lands on one build's figure and reads as a regression (or hides one).
// Here every round measures the floor and then every build, each on a fresh sidecar (warm-up,
// then the measured window), the builds' order rotating from round to round; the paced load runs
// at the same rate for the floor and every build of a size (PACE × the floor's saturated rate in
// the first round). Besides each build's median it prints its median ratio to the last build
// (the reference: give the "before" last) over the rounds — a ratio taken within one round,
// where both builds saw the same machine.
//
// Builds: the programs given (labelled A, B, C, … in that order); none given: this checkout's
// bundle (A) and BENCH_SIDECAR_B (B) when set. BENCH_SIZES (default 1,9,31), BENCH_ROUNDS
// (default 5), BENCH_SECONDS (the measured window, default 3). BENCH_NODE_FLAGS: flags put
// before each build's own (e.g. `--cpu-prof --cpu-prof-dir=<dir>` for a profile per sidecar).
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startNginxPeers, writeTokens, type NginxPod } from '../support/nginx.js';
import { onExitCleanup } from '../support/processes.js';
import { repoRoot } from '../support/repo-root.js';
import { nodeRuntimeVersion } from '../support/tools.js';
import { median } from './measure.js';
import { writeJson } from './report.js';
import { build, checker, CONCURRENCY, Floor, loadPaced, loadSaturated, NET, PACE, peerList, probeOrigins, startSidecar, TOKENS, type Build, type LoadWindow } from './sidecar-load.js';

const numbers = (name: string, fallback: number[]): number[] => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const values = raw.split(',').map(Number);
  if (values.some((v) => !Number.isFinite(v) || v <= 0)) throw new Error(`${name}=${raw}: positive numbers, comma-separated`);
  return values;
};

const SIZES = numbers('BENCH_SIZES', [1, 9, 31]);
const [ROUNDS = 5] = numbers('BENCH_ROUNDS', [5]);
const [SECONDS = 3] = numbers('BENCH_SECONDS', [3]);
const WINDOW: LoadWindow = { seconds: SECONDS, warmupMs: 700 };

const programs = process.argv.slice(2);
if (programs.length === 0) {
  programs.push(join(repoRoot(), 'dist', 'bundle', 'apigw-syncer.mjs'));
  if (process.env['BENCH_SIDECAR_B'] !== undefined) programs.push(process.env['BENCH_SIDECAR_B']);
}
const extraFlags = (process.env['BENCH_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');
const builds: Array<{ label: string; build: Build }> = programs.map((p, i) => {
  const b = build(resolve(p));
  const [runtime, ...rest] = b.argv;
  return { label: String.fromCharCode(65 + i), build: { ...b, argv: [runtime!, ...extraFlags, ...rest] } };
});
const reference = builds.at(-1)!.label;

interface Figures {
  /** CPU µs per check, closed loop. */
  readonly satCpuUs: number;
  readonly perSecond: number;
  /** CPU µs per check at the size's fixed rate. */
  readonly pacedCpuUs: number;
}
type Round = Record<string, Figures>; // by label, and 'floor'

async function measureBuild(b: Build, pods: readonly NginxPod[], probePort: number, n: number, rate: number, tokens: readonly string[]): Promise<Figures> {
  // Every check probes: the memo is off, as in the bench's fan-out rows.
  const s = await startSidecar(b, peerList(pods, n, probePort), { SYNCER_SYNCED_TTL_MS: '0' });
  const c = checker(s, CONCURRENCY);
  try {
    const op = (i: number): Promise<string> => c.check(tokens[i % tokens.length], 200);
    const sat = await loadSaturated(s, CONCURRENCY, WINDOW, op);
    const pacedCpuUs = await loadPaced(s, rate, WINDOW, op);
    return { satCpuUs: sat.cpuUs, perSecond: sat.perSecond, pacedCpuUs };
  } finally {
    await c.pool.close();
    await s.stop();
  }
}

const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(2));

function summary(n: number, rate: number, rounds: readonly Round[]): string[] {
  const lines = [`${n} peer(s), paced at ${rate}/s, ${rounds.length} rounds:`];
  const figures: Array<[keyof Figures, string]> = [
    ['satCpuUs', 'CPU µs per check, saturated'],
    ['perSecond', 'checks/s at saturation'],
    ['pacedCpuUs', `CPU µs per check, paced (${rate}/s)`],
  ];
  for (const [key, title] of figures) {
    const floor = median(rounds.map((r) => r['floor']![key]));
    lines.push(`  ${title}: floor ${fmt(floor)}`);
    for (const { label } of builds) {
      const values = rounds.map((r) => r[label]![key]);
      const m = median(values);
      const paired = label === reference ? '' : `, ${label}/${reference} ${median(rounds.map((r) => r[label]![key] / r[reference]![key])).toFixed(3)} (per-round median)`;
      lines.push(`    ${label} ${fmt(m)} [${fmt(Math.min(...values))}–${fmt(Math.max(...values))}], /floor ${(m / floor).toFixed(2)}${paired}`);
    }
  }
  return lines;
}

const wallStart = performance.now();
const loadBefore = loadavg();
const peers = await startNginxPeers(Math.max(...SIZES) + 1, NET, 10);
onExitCleanup(() => peers.pods.forEach((p) => void p.process.stop(0, 'SIGKILL')));
const { pods, probePort } = peers;
const tokens = Array.from({ length: TOKENS }, (_, i) => String(i));
await Promise.all(pods.map((p) => writeTokens(p.apiUrl, tokens)));

const floor = await Floor.start();
const results: Array<{ peers: number; rate: number; rounds: Round[] }> = [];
try {
  for (const n of SIZES) {
    const origins = probeOrigins(pods, n);
    const rounds: Round[] = [];
    const saturateFloor = () => floor.ask({ op: 'saturate', peers: origins, tokens, concurrency: CONCURRENCY, seconds: WINDOW.seconds, warmupMs: WINDOW.warmupMs });
    // A first saturation warms the floor's pools and JIT for this size; the paced rate comes from it.
    const rate = Math.round((await saturateFloor()).perSecond * PACE);
    for (let r = 0; r < ROUNDS; r++) {
      const floorSat = await saturateFloor();
      const floorPaced = await floor.ask({ op: 'paced', peers: origins, tokens, perSecond: rate, seconds: WINDOW.seconds });
      const round: Round = { floor: { satCpuUs: floorSat.cpuUsPerFanOut, perSecond: floorSat.perSecond, pacedCpuUs: floorPaced.cpuUsPerFanOut } };
      for (let i = 0; i < builds.length; i++) {
        const { label, build: b } = builds[(i + r) % builds.length]!;
        round[label] = await measureBuild(b, pods, probePort, n, rate, tokens);
      }
      rounds.push(round);
      console.error(`fanout-ab: ${n} peer(s), round ${r + 1}/${ROUNDS}: ${Object.entries(round).map(([k, f]) => `${k} ${fmt(f.satCpuUs)}/${fmt(f.pacedCpuUs)} µs, ${fmt(f.perSecond)}/s`).join('; ')}`);
    }
    results.push({ peers: n, rate, rounds });
  }
} finally {
  await floor.stop();
  await peers.stop();
}

const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? '?', node: `v${nodeRuntimeVersion()}`, loadBefore, loadAfter: loadavg() };
const path = writeJson(
  {
    machine,
    settings: { kind: 'fanout-ab', sizes: SIZES, rounds: ROUNDS, seconds: SECONDS, concurrency: CONCURRENCY, pace: PACE, nodeFlags: extraFlags },
    builds: Object.fromEntries(builds.map(({ label, build: b }) => [label, b.argv.join(' ')])),
    wallSeconds: (performance.now() - wallStart) / 1000,
    results,
  },
  join(repoRoot(), 'bench-results'),
  'fanout',
);
console.log(`apigw-syncer fan-out A/B — ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, load ${loadBefore.map((l) => l.toFixed(2)).join('/')} → ${machine.loadAfter.map((l) => l.toFixed(2)).join('/')}, ${((performance.now() - wallStart) / 1000).toFixed(0)} s`);
for (const { label, build: b } of builds) console.log(`${label} = ${b.argv.join(' ')}`);
for (const r of results) console.log(summary(r.peers, r.rate, r.rounds).join('\n'));
console.log(`JSON: ${path}`);
