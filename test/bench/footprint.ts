// What it costs to carry the sidecar, beside a bare node:http server on the same runtime started
// the same way: resident memory once idle (after discovery synced, 100 checks and a 2 s pause),
// in static mode and in kubernetes mode against a real control plane, with the pod's service
// account as a container sees it; time from process start to /readyz 200 (the bare server's: to
// its first answer); and the bytes of what the image copies.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { runtimeSpec, parseStages } from '../packaging/dockerfile.js';
import { freePort } from '../support/net.js';
import { runTracked, spawnTracked, withPath, type TrackedProcess } from '../support/processes.js';
import { rssBytes } from '../support/process-resources.js';
import { asLaunched } from '../support/sidecar-process.js';
import { median } from './measure.js';

const MB = 1024 * 1024;
/** How long a process is left alone before its idle RSS is read. */
export const IDLE_PAUSE_MS = 2_000;
const CHECKS_BEFORE_IDLE = 100;

export interface Launched {
  readonly process: TrackedProcess;
  /** Process start (spawn) to the first 200 from `readyUrl`, in ms. */
  readonly readyMs: number;
}

/** GET url once, without keep-alive; resolves with the status, or 0 when nothing answers. */
function statusOf(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * Starts `argv` with exactly `env` (+ PATH) and polls `readyUrl` every millisecond until it
 * answers 200: the time from spawn to then is the start-up figure. Fails if the process exits
 * first or 60 s pass.
 */
export async function launch(argv: readonly string[], env: Readonly<Record<string, string>>, readyUrl: string): Promise<Launched> {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('empty argv');
  const full = withPath(env);
  const started = performance.now();
  const proc = spawnTracked(...asLaunched(command, args, full), { env: full, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => void (output = (output + chunk.toString('utf8')).slice(-4000));
  proc.child.stdout?.on('data', keep);
  proc.child.stderr?.on('data', keep);
  for (;;) {
    if ((await statusOf(readyUrl)) === 200) return { process: proc, readyMs: performance.now() - started };
    const exit = proc.exitStatus();
    if (exit !== undefined || performance.now() - started > 60_000) {
      await proc.stop(1_000, 'SIGKILL');
      throw new Error(`${argv.join(' ')} ${exit === undefined ? 'never answered' : 'exited'} at ${readyUrl}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Resident MB of a launched process after `IDLE_PAUSE_MS` of rest. */
export async function idleRssMb(proc: TrackedProcess): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, IDLE_PAUSE_MS));
  return rssBytes(proc.pid) / MB;
}

/** 100 checks, one at a time over one keep-alive connection, each answered 200. */
export async function checksBeforeIdle(apiUrl: string, tokens: readonly string[]): Promise<void> {
  const pool = new Pool(apiUrl, { connections: 1 });
  try {
    for (let i = 0; i < CHECKS_BEFORE_IDLE; i++) {
      const res = await pool.request({ method: 'GET', path: '/v1/synced', headers: { 'x-auth-token': tokens[i % tokens.length]! } });
      const body = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`check answered ${res.statusCode}: ${body}`);
    }
  } finally {
    await pool.close();
  }
}

/** Two free ports on `host`, for a check listener and an ops listener. */
export async function addresses(host: string): Promise<{ api: string; ops: string }> {
  return { api: `${host}:${await freePort(host)}`, ops: `${host}:${await freePort(host)}` };
}

/** The median start-up of `runs` fresh launches (each stopped after), in ms. */
export async function medianStartMs(runs: number, start: () => Promise<Launched>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const l = await start();
    times.push(l.readyMs);
    await l.process.stop(5_000, 'SIGTERM');
  }
  return median(times);
}

// ---- what the image copies ---------------------------------------------------------------------

function bytesOf(path: string, skip: (path: string) => boolean = () => false): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const entry of readdirSync(path)) {
    const p = join(path, entry);
    if (!skip(p)) total += bytesOf(p, skip);
  }
  return total;
}

/** The bytes of a package's production dependencies: each installed directory without its own node_modules. */
async function productionDependencyBytes(root: string): Promise<number> {
  const r = await runTracked('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, env: withPath({ HOME: process.env['HOME'] ?? '/' }) });
  const dirs = r.stdout.split('\n').filter((d) => d !== '' && d !== root);
  return dirs.reduce((sum, dir) => sum + bytesOf(dir, (p) => p === join(dir, 'node_modules')), 0);
}

/**
 * The MB the runtime stage of `root`'s Dockerfile copies: each COPY source, mapped back to the
 * checkout (a build-stage path /src/x or /app/x is x there; node_modules from a stage that ran
 * `npm ci --omit=dev` is the production dependency tree).
 */
export async function imageFilesMb(root: string): Promise<number> {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const stages = parseStages(text);
  const runtime = stages.at(-1);
  if (runtime === undefined) throw new Error(`${root}/Dockerfile has no stage`);
  let total = 0;
  for (const copy of runtime.instructions.filter((i) => i.keyword === 'COPY')) {
    const words = copy.args.split(/\s+/);
    const from = /^--from=(\S+)$/.exec(words[0] ?? '')?.[1];
    const sources = words.slice(from === undefined ? 0 : 1, -1);
    for (const source of sources) {
      const path = source.replace(/^\/(src|app)\//, '');
      if (path === 'node_modules') {
        const stage = stages.find((s) => s.name === from);
        if (!(stage?.instructions ?? []).some((i) => i.keyword === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args))) throw new Error(`COPY ${copy.args}: not a production install`);
        total += await productionDependencyBytes(root);
      } else {
        total += bytesOf(join(root, path));
      }
    }
  }
  return total / MB;
}

/**
 * The command line `root`'s image runs `program` with: its ENTRYPOINT and CMD, `node` replaced by
 * `runtime` and the image's program (its first .js/.mjs argument) by `program`.
 */
export function imageCommand(root: string, runtime: string, program: string): string[] {
  const spec = runtimeSpec(readFileSync(join(root, 'Dockerfile'), 'utf8'));
  const argv = [...spec.entrypoint, ...spec.cmd];
  const at = argv.findIndex((a) => /\.m?js$/.test(a));
  if (argv[0] !== 'node' || at < 0) throw new Error(`${root}/Dockerfile: the ENTRYPOINT does not run a program on node: ${argv.join(' ')}`);
  return argv.map((a, i) => (i === 0 ? runtime : i === at ? program : a));
}

