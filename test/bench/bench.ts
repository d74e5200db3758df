// `npm run bench`: what a check costs the sidecar, beside a floor measured in the same run.
//
// Peers are real: open-source nginx with the shipped nginx-snippets/oss store and probe location,
// one nginx per peer on its own 127.0.7.x address (each keeps its own store). The sidecar under
// test is the built program (BENCH_SIDECAR, default the bundle, dist/bundle/apigw-syncer.mjs;
// BENCH_SIDECAR_B adds a second build measured through the same scenarios, for before/after in
// one run), each started as its own checkout's Dockerfile starts it, on this checkout's runtime
// (NODE_RUNTIME_VERSION). The floors: for CPU, a lean client in its own process sending the same
// probes; for memory and start-up, a bare node:http server started the same way (footprint.ts).
// CPU is read from each process's own /proc entry (the sidecar) or process.cpuUsage (the floor),
// never from the load generator. BENCH_QUICK=1 runs the smallest sizes for a few seconds (the
// test suite's form).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { PROBE_PATH, startNginxPeers, writeTokens, type NginxPod } from '../support/nginx.js';
import { onExitCleanup } from '../support/processes.js';
import { repoRoot } from '../support/repo-root.js';
import { ReplicationSim } from '../support/replication-sim.js';
import type { SidecarProcess } from '../support/sidecar-process.js';
import { SERVICE_ACCOUNT_DIR } from '../../sidecar/discovery/kubernetes/api-credentials.js';
import { mountedView } from '../packaging/container-view.js';
import { startControlPlane } from '../support/control-plane.js';
import { createDeployment, SA_NAME, setupCluster, waitForReadyPods } from '../support/discovery-cluster.js';
import { freePort } from '../support/net.js';
import { nodeRuntimeVersion } from '../support/tools.js';
import { issueCert, makeCa } from '../support/tls-certs.js';
import { addresses, checksBeforeIdle, idleRssMb, imageCommand, imageFilesMb, launch, medianStartMs } from './footprint.js';
import { latencyOf, median, peakRssMbOf, sequential, type Latency } from './measure.js';
import { build, checker, CONCURRENCY, Floor, loadPaced, loadSaturated, NET, PACE, peerList, probeOrigins, RUNTIME, startSidecar, staticEnv, TOKENS, type Build, type LoadWindow } from './sidecar-load.js';
import { markdown, met, writeJson, type Report, type Row } from './report.js';

const QUICK = process.env['BENCH_QUICK'] === '1';
const SIZES = QUICK ? [1, 3] : [1, 3, 9, 31, 99];
const SECONDS = QUICK ? 0.5 : 3;
const WARMUP_MS = QUICK ? 200 : 700;
const SEQ_SECONDS = QUICK ? 0.4 : 1.5;
const LAG_TRIALS = QUICK ? 8 : 150;
const LAG_PEERS = QUICK ? 3 : 9;
const MEMORY_PEERS = QUICK ? 3 : 31;
const MEMORY_CONCURRENT = QUICK ? 50 : 1000;
const REPEAT_PEERS = QUICK ? 3 : 9;
const FOOTPRINT_PEERS = QUICK ? 3 : 9;
/** Fresh starts timed per figure (the median is reported). */
const START_RUNS = QUICK ? 1 : 5;
const REPEAT_RATE = QUICK ? 1000 : 3000;
const REPEAT_ROUNDS = QUICK ? 1 : 3;
const TLS_PEERS = QUICK ? 3 : 9;
const here = dirname(fileURLToPath(import.meta.url));

const builds: Record<string, Build> = { A: build(resolve(process.env['BENCH_SIDECAR'] ?? join(repoRoot(), 'dist', 'bundle', 'apigw-syncer.mjs'))) };
if (process.env['BENCH_SIDECAR_B'] !== undefined) builds['B'] = build(resolve(process.env['BENCH_SIDECAR_B']));
/** The memory and start-up floor, started as build A is. */
const BARE_ARGV = imageCommand(builds['A']!.root, RUNTIME, join(here, 'bare-server.js'));
const WINDOW: LoadWindow = { seconds: SECONDS, warmupMs: WARMUP_MS };

/** Load at a fixed rate on the sidecar; its CPU per request from its own /proc entry. */
const pacedSidecar = (s: SidecarProcess, perSecond: number, op: (i: number) => Promise<unknown>): Promise<number> => loadPaced(s, perSecond, WINDOW, op);
/** Closed-loop load on the sidecar; its CPU per request from its own /proc entry. */
const saturateSidecar = (s: SidecarProcess, op: (i: number) => Promise<unknown>): Promise<{ perSecond: number; cpuUs: number }> => loadSaturated(s, CONCURRENCY, WINDOW, op);

// ---- scenarios --------------------------------------------------------------------------------

const rows: Row[] = [];
const add = (row: Row): void => void rows.push(row);
const each = async <T>(fn: (label: string, b: Build) => Promise<T>): Promise<Record<string, T>> => {
  const out: Record<string, T> = {};
  for (const [label, b] of Object.entries(builds)) out[label] = await fn(label, b);
  return out;
};
const pick = <T>(by: Record<string, T>, f: (t: T) => number): Record<string, number> => Object.fromEntries(Object.entries(by).map(([k, v]) => [k, f(v)]));

async function fanOutScenarios(pods: readonly NginxPod[], probePort: number, floor: Floor, tokens: readonly string[], n: number): Promise<void> {
  const origins = probeOrigins(pods, n);
  const floorSat = await floor.ask({ op: 'saturate', peers: origins, tokens, concurrency: CONCURRENCY, seconds: SECONDS, warmupMs: WARMUP_MS });
  const rate = Math.round(floorSat.perSecond * PACE);
  const floorPaced = await floor.ask({ op: 'paced', peers: origins, tokens, perSecond: rate, seconds: SECONDS });
  const floorSeq = await floor.ask({ op: 'sequential', peers: origins, tokens, seconds: SEQ_SECONDS });
  const measured = await each(async (_label, b) => {
    // Every check probes: the memo is off here (it has its own figure below).
    const s = await startSidecar(b, peerList(pods, n, probePort), { SYNCER_SYNCED_TTL_MS: '0' });
    const c = checker(s, CONCURRENCY);
    try {
      const sat = await saturateSidecar(s, (i) => c.check(tokens[i % tokens.length], 200));
      const pacedCpuUs = await pacedSidecar(s, rate, (i) => c.check(tokens[i % tokens.length], 200));
      const seq = await sequential((i) => c.check(tokens[(i + tokens.length) % tokens.length], 200).then(() => undefined), SEQ_SECONDS);
      return { ...sat, pacedCpuUs, seq };
    } finally {
      await c.pool.close();
      await s.stop();
    }
  });
  add({ figure: `CPU per check, paced (${rate}/s)`, peers: n, unit: 'µs', floor: floorPaced.cpuUsPerFanOut, values: pick(measured, (m) => m.pacedCpuUs), ...(n === 9 ? { target: { kind: 'max', limit: 1.2, on: 'ratio' } } : {}) });
  add({ figure: 'CPU per check, saturated', peers: n, unit: 'µs', floor: floorSat.cpuUsPerFanOut, values: pick(measured, (m) => m.cpuUs) });
  add({ figure: 'checks/s at saturation', peers: n, unit: '/s', floor: floorSat.perSecond, values: pick(measured, (m) => m.perSecond), ...(n === 9 ? { target: { kind: 'min', limit: 0.9, on: 'ratio' } } : {}) });
  add({ figure: 'one at a time p50', peers: n, unit: 'ms', floor: floorSeq.p50, values: pick(measured, (m) => m.seq.p50), ...(n === 9 ? { target: { kind: 'max', limit: 1.3, on: 'ratio' } } : n === 99 ? { target: { kind: 'max', limit: 3, on: 'value' } } : {}) });
  add({ figure: 'one at a time p99', peers: n, unit: 'ms', floor: floorSeq.p99, values: pick(measured, (m) => m.seq.p99), ...(n === 9 ? { target: { kind: 'max', limit: 1, on: 'value' } } : {}) });
}

async function nginxLatency(pod: NginxPod, token: string): Promise<Latency> {
  const pool = new Pool(pod.probeUrl, { connections: 1 });
  try {
    return await sequential(async () => {
      const res = await pool.request({ method: 'GET', path: PROBE_PATH, headers: { authorization: `Bearer ${token}` } });
      await res.body.text();
    }, SEQ_SECONDS);
  } finally {
    await pool.close();
  }
}

/** Tokens land on each peer 5–100 ms after the origin; the check starts when the origin has it. */
async function detectionLag(pods: readonly NginxPod[], probePort: number): Promise<void> {
  const others = pods.slice(1, LAG_PEERS + 1);
  const sim = new ReplicationSim({ name: pods[0]!.name, apiUrl: pods[0]!.apiUrl }, others.map((p) => ({ name: p.name, apiUrl: p.apiUrl })));
  const measured = await each(async (label, b) => {
    const s = await startSidecar(b, peerList(pods, LAG_PEERS, probePort));
    const c = checker(s, 1);
    const lags: number[] = [];
    let probes = 0;
    let peerAnswers = 0;
    let notSynced = 0;
    try {
      for (let i = 0; i < LAG_TRIALS; i++) {
        const token = `lag-${label}-${i}-${Date.now().toString(36)}`;
        const issued = await sim.issue(token, Object.fromEntries(others.map((p) => [p.name, 5 + Math.random() * 95])));
        const body = JSON.parse(await c.check(token, 200)) as { verdict: string; peers: Array<{ attempts: number }> };
        const answeredAt = performance.now();
        const writes = await issued.replicated;
        const failed = writes.find((w) => w.atMs === undefined);
        if (failed !== undefined) throw new Error(`replication write to ${failed.name} was cancelled`); // a failed write rejects `replicated`
        if (body.verdict !== 'Synced') notSynced++;
        lags.push(answeredAt - (issued.originAt + Math.max(...writes.map((w) => w.atMs!))));
        for (const p of body.peers) probes += p.attempts;
        peerAnswers += body.peers.length;
      }
    } finally {
      await c.pool.close();
      await s.stop();
    }
    return { lag: latencyOf(lags), probesPerPeer: probes / peerAnswers, notSynced };
  });
  add({ figure: 'detection lag p50 (lags 5–100 ms)', peers: LAG_PEERS, unit: 'ms', floor: null, values: pick(measured, (m) => m.lag.p50) });
  add({ figure: 'detection lag p99 (lags 5–100 ms)', peers: LAG_PEERS, unit: 'ms', floor: null, values: pick(measured, (m) => m.lag.p99), target: { kind: 'max', limit: 25, on: 'value' } });
  add({ figure: 'probes per peer per check', peers: LAG_PEERS, unit: '', floor: null, values: pick(measured, (m) => m.probesPerPeer), target: { kind: 'max', limit: 6, on: 'value' } });
  add({ figure: 'checks not Synced (must be 0)', peers: LAG_PEERS, unit: '', floor: null, values: pick(measured, (m) => m.notSynced), target: { kind: 'max', limit: 0, on: 'value' } });
}

/**
 * Peak RSS of a fresh sidecar through a burst of concurrent checks, beside the bare server's idle
 * RSS (the floor of the footprint figures); the lean client's own peak in the same burst is shown
 * for scale.
 */
async function peakMemory(pods: readonly NginxPod[], probePort: number, tokens: readonly string[], bareIdleMb: number): Promise<void> {
  const origins = probeOrigins(pods, MEMORY_PEERS);
  const floor = await Floor.start();
  const floorBurst = await floor.ask({ op: 'burst', peers: origins, tokens, concurrent: MEMORY_CONCURRENT });
  await floor.stop();
  for (const bound of ['default', String(MEMORY_CONCURRENT)] as const) {
    const measured = await each(async (_label, b) => {
      const s = await startSidecar(b, peerList(pods, MEMORY_PEERS, probePort), { SYNCER_SYNCED_TTL_MS: '0', ...(bound === 'default' ? {} : { SYNCER_MAX_IN_FLIGHT: bound }) });
      const idle = peakRssMbOf(s.process.pid);
      const pool = new Pool(s.apiUrl, { connections: MEMORY_CONCURRENT });
      const statuses = new Map<number, number>();
      try {
        await Promise.all(
          Array.from({ length: MEMORY_CONCURRENT }, async (_, i) => {
            const res = await pool.request({ method: 'GET', path: '/v1/synced', headers: { 'x-auth-token': tokens[i % tokens.length]! } });
            await res.body.text();
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          }),
        );
        return { idle, peak: peakRssMbOf(s.process.pid), answered200: statuses.get(200) ?? 0 };
      } finally {
        await pool.close();
        await s.stop();
      }
    });
    const name = bound === 'default' ? 'default SYNCER_MAX_IN_FLIGHT' : `SYNCER_MAX_IN_FLIGHT=${bound}`;
    add({ figure: `peak RSS, ${MEMORY_CONCURRENT} concurrent checks (${name}; floor: bare server idle)`, peers: MEMORY_PEERS, unit: 'MB', floor: bareIdleMb, values: pick(measured, (m) => m.peak), ...(bound === 'default' ? { target: { kind: 'max', limit: 1.7, on: 'ratio' } } : {}) });
    add({ figure: `  checks answered 200 in that burst (${name})`, peers: MEMORY_PEERS, unit: '', floor: MEMORY_CONCURRENT, values: pick(measured, (m) => m.answered200) });
    if (bound === 'default') {
      add({ figure: '  the lean client\'s own peak RSS in that burst', peers: MEMORY_PEERS, unit: 'MB', floor: floorBurst.peakRssMb, values: {} });
      add({ figure: 'idle RSS before the burst (fresh, no check yet)', peers: MEMORY_PEERS, unit: 'MB', floor: bareIdleMb, values: pick(measured, (m) => m.idle) });
    }
  }
}

/** The figures of carrying the sidecar beside the bare server's; returns the bare server's idle RSS (MB). */
async function footprint(pods: readonly NginxPod[], probePort: number, tokens: readonly string[]): Promise<number> {
  const local = '127.0.0.1';
  // The floor: a bare node:http server, its start to its first answer, and its RSS after that answer.
  const bare = async () => {
    const addr = `${local}:${await freePort(local)}`;
    return launch(BARE_ARGV, { BARE_ADDR: addr }, `http://${addr}/`);
  };
  const bareStartMs = await medianStartMs(START_RUNS, bare);
  const bareIdle = await bare();
  const bareIdleMb = await idleRssMb(bareIdle.process);
  await bareIdle.process.stop(5_000, 'SIGTERM');

  /** Start-up (median of fresh starts) and idle RSS (after 100 checks) of `b` with `env` (+ its listeners), run through `prefix`. */
  const measure = async (b: Build, env: Record<string, string>, prefix: readonly string[] = []) => {
    const start = async () => {
      const a = await addresses(local);
      return { a, launched: await launch([...prefix, ...b.argv], { ...env, SYNCER_LISTEN_ADDR: a.api, SYNCER_OPS_ADDR: a.ops }, `http://${a.ops}/readyz`) };
    };
    const startMs = await medianStartMs(START_RUNS, async () => (await start()).launched);
    const { a, launched } = await start();
    try {
      await checksBeforeIdle(`http://${a.api}`, tokens);
      return { startMs, idleMb: await idleRssMb(launched.process) };
    } finally {
      await launched.process.stop(5_000, 'SIGTERM');
    }
  };

  console.error('bench: footprint, static discovery…');
  const statics = await each((_label, b) => measure(b, staticEnv(peerList(pods, FOOTPRINT_PEERS, probePort))));

  console.error('bench: footprint, kubernetes discovery against a control plane…');
  const cp = await startControlPlane();
  const view = mkdtempSync(join(tmpdir(), 'apigw-bench-sa-'));
  try {
    // The Deployment's pods get the addresses of the first nginx peers (the fake kubelet counts from .10, as they do).
    const c = await setupCluster(cp, 'bench', NET);
    try {
      await createDeployment(c, 'apigw', FOOTPRINT_PEERS + 1);
      const [self] = (await waitForReadyPods(c, 'apigw', FOOTPRINT_PEERS + 1)).map((p) => p.metadata?.name ?? '').sort();
      // The pod's service account as a container sees it: token, CA and namespace at the in-cluster path.
      const kubeconfig = JSON.parse(readFileSync(await cp.kubeconfigFor({ namespace: 'bench', name: SA_NAME }), 'utf8')) as { users: Array<{ user: { token: string } }> };
      writeFileSync(join(view, 'token'), kubeconfig.users[0]?.user.token ?? '');
      writeFileSync(join(view, 'ca.crt'), cp.caPem);
      writeFileSync(join(view, 'namespace'), 'bench');
      const home = join(view, 'home'); // no ~/.kube/config: nothing but the pod's view
      mkdirSync(home);
      const env = { POD_NAME: self ?? '', POD_NAMESPACE: 'bench', KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(cp.server).port, HOME: home, SYNCER_PROBE_PORT: String(probePort), LOG_LEVEL: 'info' };
      const prefix = mountedView([{ source: view, target: SERVICE_ACCOUNT_DIR }]);
      const kubes = await each((_label, b) => measure(b, env, prefix));
      add({ figure: 'idle RSS after 100 checks + 2 s, kubernetes discovery (floor: bare server)', peers: FOOTPRINT_PEERS, unit: 'MB', floor: bareIdleMb, values: pick(kubes, (m) => m.idleMb), target: { kind: 'max', limit: 1.3, on: 'ratio' } });
      add({ figure: 'idle RSS after 100 checks + 2 s, static discovery (floor: bare server)', peers: FOOTPRINT_PEERS, unit: 'MB', floor: bareIdleMb, values: pick(statics, (m) => m.idleMb), target: { kind: 'max', limit: 1.2, on: 'ratio' } });
      add({ figure: 'start → /readyz 200, static (floor: bare server, start → answering)', peers: FOOTPRINT_PEERS, unit: 'ms', floor: bareStartMs, values: pick(statics, (m) => m.startMs), target: { kind: 'max', limit: 1.5, on: 'ratio' } });
      add({ figure: 'start → /readyz 200, kubernetes (API server answering)', peers: FOOTPRINT_PEERS, unit: 'ms', floor: bareStartMs, values: pick(kubes, (m) => m.startMs) });
    } finally {
      await c.kubelet.stop();
    }
  } finally {
    await cp.stop();
    rmSync(view, { recursive: true, force: true });
  }
  const files = await each((_label, b) => imageFilesMb(b.root));
  add({ figure: 'production files (what the image copies)', peers: null, unit: 'MB', floor: null, values: files, target: { kind: 'max', limit: 5, on: 'value' } });
  return bareIdleMb;
}

/** A token already answered Synced, checked again, beside the cost of a request refused at once (400). */
async function repeatChecks(pods: readonly NginxPod[], probePort: number, tokens: readonly string[]): Promise<void> {
  const warm = tokens.slice(0, 200);
  const measured = await each(async (_label, b) => {
    const s = await startSidecar(b, peerList(pods, REPEAT_PEERS, probePort));
    const c = checker(s, CONCURRENCY);
    try {
      for (const token of warm) await c.check(token, 200);
      const repeat = (): Promise<number> => pacedSidecar(s, REPEAT_RATE, (i) => c.check(warm[i % warm.length], 200));
      const refused = (): Promise<number> => pacedSidecar(s, REPEAT_RATE, () => c.check(undefined, 400));
      // A first round of each warms both paths alike (the JIT settles on the shared HTTP code
      // during whichever runs first). Then the two alternate, and each figure is the median of its
      // rounds: a burst of load from elsewhere on the machine lands on one round, not on the ratio.
      await repeat();
      await refused();
      const rounds: Array<{ repeat: number; refused: number }> = [];
      for (let r = 0; r < REPEAT_ROUNDS; r++) rounds.push({ repeat: await repeat(), refused: await refused() });
      const cpu = { repeat: median(rounds.map((r) => r.repeat)), refused: median(rounds.map((r) => r.refused)) };
      // The hop every check pays before any probe (load generator → sidecar → answer): what the
      // one-at-a-time figures above hold beyond the floor's direct fan-out.
      const hop = await sequential(() => c.check(undefined, 400).then(() => undefined), SEQ_SECONDS);
      return { ...cpu, hop };
    } finally {
      await c.pool.close();
      await s.stop();
    }
  });
  add({ figure: 'one at a time p50 of a 400 refusal (the hop alone)', peers: null, unit: 'ms', floor: null, values: pick(measured, (m) => m.hop.p50) });
  add({ figure: 'one at a time p99 of a 400 refusal (the hop alone)', peers: null, unit: 'ms', floor: null, values: pick(measured, (m) => m.hop.p99) });
  for (const [label, m] of Object.entries(measured)) {
    add({
      figure: `repeat check of a Synced token at ${REPEAT_RATE}/s, CPU (floor: a 400 refusal) [${label}]`,
      peers: REPEAT_PEERS,
      unit: 'µs',
      floor: m.refused,
      values: { [label]: m.repeat },
      target: { kind: 'max', limit: 1.3, on: 'ratio' },
    });
  }
}

/** The peers' certificates for https probes: a CA, a server certificate naming PKI_NAME, a client one. */
const PKI_NAME = 'peers.bench.test';
async function benchPki(dir: string): Promise<{ server: string; client: string }> {
  const ca = await makeCa(join(dir, 'ca'), 'bench CA');
  const [server, client] = await Promise.all([issueCert(ca, join(dir, 'server'), [PKI_NAME]), issueCert(ca, join(dir, 'client'), [], 1, { usages: ['clientAuth'], commonName: 'bench-sidecar' })]);
  return { server, client };
}

/**
 * What TLS costs a check: the same sidecar build twice, probing the same peers for the same
 * tokens, one over http and one over mutual TLS (each peer's second probe listener, the chart's
 * TLS setup), in the same run. Both are saturated once (throughput, and the paced rate: PACE of
 * the http one's), then paced at that rate in alternating rounds, each figure the median of its
 * rounds: a burst of load from elsewhere lands on one round, not on the ratio. The http figure
 * is the floor; the ratio is the cost.
 */
async function tlsCost(pods: readonly NginxPod[], ports: { http: number; https: number }, pki: { server: string; client: string }, tokens: readonly string[]): Promise<void> {
  const https = {
    SYNCER_PROBE_SCHEME: 'https',
    SYNCER_PROBE_CA_FILE: join(pki.server, 'ca.crt'),
    SYNCER_PROBE_CERT_FILE: join(pki.client, 'tls.crt'),
    SYNCER_PROBE_KEY_FILE: join(pki.client, 'tls.key'),
    SYNCER_PROBE_SERVERNAME: PKI_NAME,
  };
  const measured = await each(async (_label, b) => {
    const start = async (port: number, env: Record<string, string>): Promise<{ s: SidecarProcess; c: ReturnType<typeof checker> }> => {
      const s = await startSidecar(b, peerList(pods, TLS_PEERS, port), { SYNCER_SYNCED_TTL_MS: '0', ...env });
      return { s, c: checker(s, CONCURRENCY) };
    };
    const sides = { plain: await start(ports.http, {}), tls: await start(ports.https, https) };
    try {
      const check = (side: keyof typeof sides) => (i: number): Promise<string> => sides[side].c.check(tokens[i % tokens.length], 200);
      const sat = { plain: await saturateSidecar(sides.plain.s, check('plain')), tls: await saturateSidecar(sides.tls.s, check('tls')) };
      const rate = Math.round(sat.plain.perSecond * PACE);
      const rounds: Array<{ plain: number; tls: number }> = [];
      for (let r = 0; r < REPEAT_ROUNDS; r++) rounds.push({ plain: await pacedSidecar(sides.plain.s, rate, check('plain')), tls: await pacedSidecar(sides.tls.s, rate, check('tls')) });
      return { rate, sat, paced: { plain: median(rounds.map((x) => x.plain)), tls: median(rounds.map((x) => x.tls)) } };
    } finally {
      for (const side of Object.values(sides)) {
        await side.c.pool.close();
        await side.s.stop();
      }
    }
  });
  for (const [label, m] of Object.entries(measured)) {
    add({ figure: `CPU per check, https vs http (same run), paced (${m.rate}/s) [${label}]`, peers: TLS_PEERS, unit: 'µs', floor: m.paced.plain, values: { [label]: m.paced.tls } });
    add({ figure: `CPU per check, https vs http (same run), saturated [${label}]`, peers: TLS_PEERS, unit: 'µs', floor: m.sat.plain.cpuUs, values: { [label]: m.sat.tls.cpuUs } });
    add({ figure: `checks/s at saturation, https vs http (same run) [${label}]`, peers: TLS_PEERS, unit: '/s', floor: m.sat.plain.perSecond, values: { [label]: m.sat.tls.perSecond } });
  }
}

// ---- the run ----------------------------------------------------------------------------------

const wallStart = performance.now();
const load = { before: loadavg() };
const maxPeers = Math.max(...SIZES, LAG_PEERS, MEMORY_PEERS, REPEAT_PEERS);
console.error(`bench: starting ${maxPeers + 1} nginx peers on ${NET}10-${10 + maxPeers}…`);
const pkiDir = mkdtempSync(join(tmpdir(), 'apigw-bench-pki-'));
onExitCleanup(() => rmSync(pkiDir, { recursive: true, force: true }));
const pki = await benchPki(pkiDir);
const peers = await startNginxPeers(maxPeers + 1, NET, 10, pki.server);
onExitCleanup(() => peers.pods.forEach((p) => void p.process.stop(0, 'SIGKILL')));
const { pods, probePort } = peers;
// Short tokens, so that the whole pool fits one write into each empty store (the API's 12k bound).
const tokens = Array.from({ length: TOKENS }, (_, i) => String(i));
await Promise.all(pods.map((p) => writeTokens(p.apiUrl, tokens)));

const bareIdleMb = await footprint(pods, probePort, tokens);
const floor = await Floor.start();
try {
  for (const n of SIZES) {
    console.error(`bench: ${n} peer(s)…`);
    await fanOutScenarios(pods, probePort, floor, tokens, n);
  }
} finally {
  await floor.stop();
}
const single = await nginxLatency(pods[1]!, tokens[0]!);
add({ figure: 'one nginx, single probe p50', peers: 1, unit: 'ms', floor: single.p50, values: {} });
add({ figure: 'one nginx, single probe p99', peers: 1, unit: 'ms', floor: single.p99, values: {} });
console.error('bench: detection lag…');
await detectionLag(pods, probePort);
console.error('bench: peak memory…');
await peakMemory(pods, probePort, tokens, bareIdleMb);
console.error('bench: repeat checks…');
await repeatChecks(pods, probePort, tokens);
console.error('bench: https vs http…');
if (peers.probeTlsPort === undefined) throw new Error('the peers have no TLS probe listener');
await tlsCost(pods, { http: probePort, https: peers.probeTlsPort }, pki, tokens);
await peers.stop();

const report: Report = {
  machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? '?', node: `v${nodeRuntimeVersion()} (sidecars and floors, the image's runtime: ${RUNTIME}); load generator ${process.version}`, loadBefore: load.before, loadAfter: loadavg() },
  settings: { bareServer: BARE_ARGV.join(' '), quick: QUICK, sizes: SIZES, seconds: SECONDS, concurrency: CONCURRENCY, tokens: TOKENS, lagTrials: LAG_TRIALS, peers: 'nginx + nginx-snippets/oss, one per 127.0.7.x (a second probe listener over mutual TLS for the https rows)', sidecarEnv: 'defaults, LOG_LEVEL=info, static discovery; SYNCER_SYNCED_TTL_MS=0 where every check must probe' },
  builds: Object.fromEntries(Object.entries(builds).map(([k, b]) => [k, b.argv.join(' ')])),
  rows,
  wallSeconds: (performance.now() - wallStart) / 1000,
};
const path = writeJson(report, join(repoRoot(), 'bench-results'));
console.log(`apigw-syncer bench — ${report.machine['cores']} cores (${String(report.machine['cpu'])}), sidecars and floors on Node v${nodeRuntimeVersion()}, load ${load.before.map((l) => l.toFixed(2)).join('/')} → ${loadavg().map((l) => l.toFixed(2)).join('/')}, ${report.wallSeconds.toFixed(0)} s`);
console.log(Object.entries(report.builds).map(([k, v]) => `${k} = ${v}`).join('; '));
console.log('');
console.log(markdown(report));
console.log('');
const missed = rows.flatMap((r) => Object.keys(builds).filter((b) => met(r, b) === false).map((b) => `${r.figure} (${r.peers ?? '-'} peers, ${b})`));
console.log(missed.length === 0 ? 'every target met' : `targets not met: ${missed.join('; ')}`);
console.log(`JSON: ${path}`);
