// What the bench and the fan-out A/B (fanout-ab.ts) share: the builds under test, each started as
// its own checkout's Dockerfile starts it on the image's runtime; the lean floor client in its own
// process; and load on a sidecar's check API with its CPU read from its own /proc entry.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import type { NginxPod } from '../support/nginx.js';
import { onExitCleanup } from '../support/processes.js';
import { startSidecarProcess, type SidecarProcess } from '../support/sidecar-process.js';
import { nodeRuntimePath } from '../support/tools.js';
import type { FloorReply, FloorRequest } from './floor-client.js';
import { imageCommand } from './footprint.js';
import { cpuSecondsOf, paced, saturate } from './measure.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The image's Node: sidecars and floors run on it. */
export const RUNTIME = nodeRuntimePath();

export interface Build {
  /** The checkout it was built in (holding its Dockerfile and, for a build that needs them, its node_modules). */
  readonly root: string;
  readonly program: string;
  /** Its image's command line, on RUNTIME. */
  readonly argv: readonly string[];
}

/** The checkout of `program`: the nearest directory above it with a Dockerfile. */
function rootOf(program: string): string {
  for (let dir = dirname(program); dir !== dirname(dir); dir = dirname(dir)) if (existsSync(join(dir, 'Dockerfile'))) return dir;
  throw new Error(`no Dockerfile above ${program}`);
}

export function build(program: string): Build {
  const root = rootOf(program);
  return { root, program, argv: imageCommand(root, RUNTIME, program) };
}

// ---- the load both tools put on a sidecar ----------------------------------------------------

/** The load generator's connections to the sidecar's check API. */
export const CONCURRENCY = 16;
/** Paced runs go at this fraction of the floor's saturated rate: a load both sides carry easily. */
export const PACE = 0.3;
/** Tokens written to every peer, checked round-robin. */
export const TOKENS = 1000;
/** The peers' addresses: one nginx per 127.0.7.x. */
export const NET = '127.0.7.';

// ---- peers ----------------------------------------------------------------------------------

/** SYNCER_PEERS of pod-0's sidecar with pods 1..n as its peers. */
export const peerList = (pods: readonly NginxPod[], n: number, probePort: number): string =>
  pods.slice(0, n + 1).map((p) => `${p.name}=${p.host}:${probePort}`).join(',');
export const probeOrigins = (pods: readonly NginxPod[], n: number): string[] => pods.slice(1, n + 1).map((p) => p.probeUrl);

// ---- the floor ------------------------------------------------------------------------------

export class Floor {
  private constructor(private readonly child: ChildProcess) {}

  static async start(): Promise<Floor> {
    // The same Node as the sidecar's, the image's.
    const child = fork(join(here, 'floor-client.js'), [], { execPath: RUNTIME, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    onExitCleanup(() => child.kill('SIGKILL'));
    await once(child, 'spawn');
    return new Floor(child);
  }

  async ask<O extends FloorRequest['op']>(req: Extract<FloorRequest, { op: O }>): Promise<Extract<FloorReply, { op: O }>> {
    this.child.send(req);
    const [reply] = (await once(this.child, 'message')) as [FloorReply];
    if (reply.op === 'error') throw new Error(`floor: ${reply.message}`);
    return reply as Extract<FloorReply, { op: O }>;
  }

  async stop(): Promise<void> {
    const exited = once(this.child, 'exit');
    this.child.disconnect();
    await exited;
  }
}

// ---- the sidecar ----------------------------------------------------------------------------

/** Static discovery of `peers` as pod-0; logs at info, as production writes them: the bench pays for them too. */
export const staticEnv = (peers: string): Record<string, string> => ({ POD_NAME: 'pod-0', POD_NAMESPACE: 'bench', SYNCER_DISCOVERY: 'static', SYNCER_PEERS: peers, LOG_LEVEL: 'info' });

export async function startSidecar(b: Build, peers: string, env: Record<string, string> = {}): Promise<SidecarProcess> {
  return startSidecarProcess({ ...staticEnv(peers), ...env }, { argv: b.argv });
}

export interface Checker {
  readonly pool: Pool;
  check(token: string | undefined, expect: number): Promise<string>;
}

/** A keep-alive client to the sidecar's check API, like nginx's upstream keepalive. */
export function checker(s: SidecarProcess, connections: number): Checker {
  const pool = new Pool(s.apiUrl, { connections });
  return {
    pool,
    async check(token, expect) {
      const res = await pool.request({ method: 'GET', path: '/v1/synced', headers: token === undefined ? {} : { 'x-auth-token': token } });
      const text = await res.body.text();
      if (res.statusCode !== expect) throw new Error(`sidecar answered ${res.statusCode}, expected ${expect}: ${text}`);
      return text;
    },
  };
}

/** How long load runs: a warm-up, then the measured window. */
export interface LoadWindow {
  readonly seconds: number;
  readonly warmupMs: number;
}

/** Load at a fixed rate on the sidecar; its CPU per request (µs) from its own /proc entry. */
export async function loadPaced(s: SidecarProcess, perSecond: number, w: LoadWindow, op: (i: number) => Promise<unknown>): Promise<number> {
  const pid = s.process.pid;
  let cpu = 0;
  const r = await paced(async (i) => void (await op(i)), perSecond, w.seconds, w.warmupMs, {
    start: () => void (cpu = cpuSecondsOf(pid)),
    end: () => void (cpu = cpuSecondsOf(pid) - cpu),
  });
  return (cpu / r.count) * 1e6;
}

/** Closed-loop load from `concurrency` loops on the sidecar; its CPU per request (µs) from its own /proc entry. */
export async function loadSaturated(s: SidecarProcess, concurrency: number, w: LoadWindow, op: (i: number) => Promise<unknown>): Promise<{ perSecond: number; cpuUs: number }> {
  const pid = s.process.pid;
  let cpu = 0;
  const r = await saturate(async (i) => void (await op(i)), concurrency, w.seconds, w.warmupMs, {
    start: () => void (cpu = cpuSecondsOf(pid)),
    end: () => void (cpu = cpuSecondsOf(pid) - cpu),
  });
  return { perSecond: r.perSecond, cpuUs: (cpu / r.count) * 1e6 };
}
