// The bench's floor, in its own process: the same probes a check sends, sent directly by a lean
// client (undici Pool.request + body.text() + Promise.all over one keep-alive pool per peer),
// with nothing else to do. Its CPU is read here, over the measured window only.
// Driven over IPC by bench.ts: every request is answered with one reply message.
import { Pool } from 'undici';
import { latencyOf, paced, peakRssMbOf, saturate, sequential } from './measure.js';

export type FloorRequest =
  | { readonly op: 'saturate'; readonly peers: readonly string[]; readonly tokens: readonly string[]; readonly concurrency: number; readonly seconds: number; readonly warmupMs: number }
  | { readonly op: 'paced'; readonly peers: readonly string[]; readonly tokens: readonly string[]; readonly perSecond: number; readonly seconds: number }
  | { readonly op: 'sequential'; readonly peers: readonly string[]; readonly tokens: readonly string[]; readonly seconds: number }
  | { readonly op: 'burst'; readonly peers: readonly string[]; readonly tokens: readonly string[]; readonly concurrent: number };

export type FloorReply =
  | { readonly op: 'saturate'; readonly count: number; readonly perSecond: number; readonly cpuUsPerFanOut: number }
  | { readonly op: 'paced'; readonly count: number; readonly perSecond: number; readonly cpuUsPerFanOut: number }
  | { readonly op: 'sequential'; readonly p50: number; readonly p99: number; readonly count: number }
  | { readonly op: 'burst'; readonly peakRssMb: number; readonly p50: number; readonly p99: number }
  | { readonly op: 'error'; readonly message: string };

const PROBE_PATH = '/apigw-syncer/probe';
const pools = new Map<string, Pool>();

function poolsFor(peers: readonly string[], connections: number): Pool[] {
  return peers.map((origin) => {
    let pool = pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, { connections });
      pools.set(origin, pool);
    }
    return pool;
  });
}

/** One fan-out: the token to every peer at once, each answer read whole; throws unless all 200. */
async function fanOut(targets: readonly Pool[], token: string): Promise<void> {
  const statuses = await Promise.all(
    targets.map(async (pool) => {
      const res = await pool.request({ method: 'GET', path: PROBE_PATH, headers: { authorization: `Bearer ${token}` } });
      await res.body.text();
      return res.statusCode;
    }),
  );
  if (statuses.some((s) => s !== 200)) throw new Error(`floor fan-out got ${statuses.join(',')}`);
}

async function handle(req: FloorRequest): Promise<FloorReply> {
  const token = (i: number): string => req.tokens[((i % req.tokens.length) + req.tokens.length) % req.tokens.length]!;
  switch (req.op) {
    case 'saturate': {
      const targets = poolsFor(req.peers, req.concurrency);
      let cpu = process.cpuUsage();
      const r = await saturate((i) => fanOut(targets, token(i)), req.concurrency, req.seconds, req.warmupMs, {
        start: () => void (cpu = process.cpuUsage()),
        end: () => void (cpu = process.cpuUsage(cpu)),
      });
      return { op: 'saturate', count: r.count, perSecond: r.perSecond, cpuUsPerFanOut: (cpu.user + cpu.system) / r.count };
    }
    case 'paced': {
      const targets = poolsFor(req.peers, 16);
      let cpu = process.cpuUsage();
      const r = await paced((i) => fanOut(targets, token(i)), req.perSecond, req.seconds, 500, {
        start: () => void (cpu = process.cpuUsage()),
        end: () => void (cpu = process.cpuUsage(cpu)),
      });
      return { op: 'paced', count: r.count, perSecond: r.perSecond, cpuUsPerFanOut: (cpu.user + cpu.system) / r.count };
    }
    case 'sequential': {
      const targets = poolsFor(req.peers, 4);
      return { op: 'sequential', ...(await sequential((i) => fanOut(targets, token(i)), req.seconds)) };
    }
    case 'burst': {
      const targets = poolsFor(req.peers, 32);
      const samples: number[] = [];
      await Promise.all(
        Array.from({ length: req.concurrent }, async (_, i) => {
          const t0 = performance.now();
          await fanOut(targets, token(i));
          samples.push(performance.now() - t0);
        }),
      );
      const l = latencyOf(samples);
      return { op: 'burst', peakRssMb: peakRssMbOf(process.pid), p50: l.p50, p99: l.p99 };
    }
  }
}

process.on('message', (req: FloorRequest) => {
  handle(req).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ op: 'error', message: err instanceof Error ? err.message : String(err) } satisfies FloorReply),
  );
});
process.on('disconnect', () => {
  void Promise.all([...pools.values()].map((p) => p.destroy())).then(() => process.exit(0));
});
