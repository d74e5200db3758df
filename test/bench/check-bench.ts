// `npm run bench`: checks per second and latency of /v1/synced with 9 synced peers, against a
// floor measured in the same run: the same 9-probe fan-out sent directly, without the sidecar.
// Peers and the sidecar run in their own processes; this process only generates load.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { startSidecarProcess } from '../support/sidecar-process.js';
import { waitFor } from '../support/wait.js';

const PEERS = 9;
const PORT = 18095;
const NET = '127.0.8.';
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 16);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);

interface Result {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly count: number;
}

/** Runs `op` from CONCURRENCY loops for SECONDS (after a 1 s warm-up) and measures each call. */
async function measure(op: (i: number) => Promise<void>, onMeasuredStart: () => Promise<void> = async () => {}): Promise<Result> {
  let seq = 0;
  const run = async (until: number, samples: number[] | undefined): Promise<void> => {
    while (performance.now() < until) {
      const started = performance.now();
      await op(seq++);
      samples?.push(performance.now() - started);
    }
  };
  const loops = (until: number, samples?: number[]) => Promise.all(Array.from({ length: CONCURRENCY }, () => run(until, samples)));
  await loops(performance.now() + 1_000);
  const samples: number[] = [];
  await onMeasuredStart();
  const started = performance.now();
  await loops(started + SECONDS * 1_000, samples);
  const elapsed = (performance.now() - started) / 1_000;
  samples.sort((a, b) => a - b);
  const at = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { perSecond: samples.length / elapsed, p50: at(0.5), p99: at(0.99), count: samples.length };
}

async function cpuSeconds(opsUrl: string): Promise<number> {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  return Number(/^process_cpu_seconds_total (\S+)$/m.exec(text)?.[1] ?? NaN);
}

const here = dirname(fileURLToPath(import.meta.url));
const peers = spawn(process.execPath, [join(here, 'peers.js'), NET, '11', String(PEERS), String(PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
process.once('exit', () => peers.kill('SIGKILL'));
await once(peers.stdout!, 'data');

const peerHosts = Array.from({ length: PEERS }, (_, i) => `${NET}${11 + i}`);
// Logs stay at info: one line per check is what production writes, so the bench pays for it too.
const sidecar = await startSidecarProcess({
  POD_NAME: 'pod-0',
  POD_NAMESPACE: 'bench',
  SYNCER_DISCOVERY: 'static',
  SYNCER_PEERS: ['pod-0=127.0.8.10:18095', ...peerHosts.map((h, i) => `pod-${i + 1}=${h}:${PORT}`)].join(','),
  LOG_LEVEL: 'info',
});
await waitFor(async () => (await fetch(`${sidecar.opsUrl}/readyz`)).status === 200, 'sidecar readiness');

// Floor: this process sends the 9 probes of a check itself, over keep-alive pools, like the sidecar does.
const probePools = peerHosts.map((h) => new Pool(`http://${h}:${PORT}`, { connections: CONCURRENCY }));
let floorCpuStart = process.cpuUsage();
const floor = await measure(async (i) => {
  await Promise.all(
    probePools.map(async (pool) => {
      const res = await pool.request({ method: 'GET', path: '/apigw-syncer/probe', headers: { authorization: `Bearer floor-${i}` } });
      await res.body.text();
    }),
  );
}, async () => {
  floorCpuStart = process.cpuUsage();
});
// CPU of this process for the floor's fan-outs (it also drives them: an upper bound of the fan-out's own cost).
const floorCpu = process.cpuUsage(floorCpuStart);
const floorCpuPerCheckUs = (floorCpu.user + floorCpu.system) / floor.count;

const api = new Pool(sidecar.apiUrl, { connections: CONCURRENCY });
let cpuBefore = 0;
const sidecarRun = await measure(async (i) => {
  const res = await api.request({ method: 'GET', path: '/v1/synced', headers: { 'x-auth-token': `bench-token-${i}` } });
  await res.body.text();
  if (res.headers['x-token-status'] !== 'Synced') throw new Error(`unexpected verdict ${String(res.headers['x-token-status'])}`);
}, async () => {
  cpuBefore = await cpuSeconds(sidecar.opsUrl);
});
// The last loops' checks finish after the window closes: CONCURRENCY is the error bound on the count.
const cpuPerCheckUs = (((await cpuSeconds(sidecar.opsUrl)) - cpuBefore) / sidecarRun.count) * 1e6;

const fmt = (r: Result): string => `${r.perSecond.toFixed(0)} checks/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms (${r.count} checks)`;
console.log(`apigw-syncer bench: ${PEERS} synced peers, concurrency ${CONCURRENCY}, ${SECONDS} s per run, distinct tokens (no single-flight sharing)`);
console.log(`floor   (9 direct probes per check, no sidecar): ${fmt(floor)}`);
console.log(`sidecar (GET /v1/synced → 9 probes)           : ${fmt(sidecarRun)}`);
console.log(`CPU per check: sidecar ~${cpuPerCheckUs.toFixed(0)} µs (its process_cpu_seconds_total), floor ~${floorCpuPerCheckUs.toFixed(0)} µs (load process, fan-out + load generation)`);
console.log(`ratios vs floor: throughput ${(sidecarRun.perSecond / floor.perSecond).toFixed(2)}×, p50 latency ${(sidecarRun.p50 / floor.p50).toFixed(2)}×, p99 latency ${(sidecarRun.p99 / floor.p99).toFixed(2)}×, CPU per check ${(cpuPerCheckUs / floorCpuPerCheckUs).toFixed(2)}×`);

await Promise.all([api.close(), ...probePools.map((p) => p.close())]);
await sidecar.stop();
peers.kill('SIGTERM');
