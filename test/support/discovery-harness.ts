// Shared pieces for the discovery tests: config from an env map, a logger whose lines the test
// can read, a manual clock, Kubernetes object builders, a record of a source's API requests and
// event-driven waits on the store (polling waits are waitFor in wait.ts).
import { Writable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { parseConfig, type Config } from '../../sidecar/config.js';
import type { Clock } from '../../sidecar/discovery/clock.js';
import type { KubeHttp } from '../../sidecar/discovery/kubernetes/kube-http.js';
import type { DiscoveryState, Peer, PeerSet } from '../../sidecar/model.js';
import { PeerStore } from '../../sidecar/discovery/peer-store.js';
import { DiscoveryLog } from '../../sidecar/telemetry/discovery-log.js';
import { Telemetry } from '../../sidecar/telemetry/metrics.js';

export function configFrom(env: Record<string, string>): Config {
  const parsed = parseConfig(env, { hostname: 'test-host', serviceAccountNamespace: undefined });
  if (!parsed.ok) throw new Error(`bad test config: ${parsed.errors.join('; ')}`);
  return parsed.config;
}

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** A pino logger that keeps every line as parsed JSON (and optionally echoes them). */
export function captureLogger(level: pino.LevelWithSilent = 'debug', echo?: (line: string) => void): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text.trim() === '') continue;
        lines.push(JSON.parse(text) as LogLine);
        echo?.(text);
      }
      cb();
    },
  });
  return { log: pino({ level }, stream), lines };
}

/** A store with metrics and discovery logs subscribed, as the sidecar wires them (app.ts). */
export function newStore(log: Logger): { store: PeerStore; telemetry: Telemetry } {
  const telemetry = new Telemetry({ defaultMetrics: false });
  const store = new PeerStore();
  store.observe(telemetry);
  store.observe(new DiscoveryLog(log));
  return { store, telemetry };
}

export function names(peers: readonly Peer[]): string[] {
  return peers.map((p) => p.name).sort();
}

export interface SeenSet {
  readonly set: PeerSet;
  /** performance.now() when the store published it (or when the wait began, if it was already current). */
  readonly at: number;
}

/**
 * Resolves with the first published set (current or future) that satisfies `want`, by
 * subscribing to store.onChange: no polling. Rejects after timeoutMs with what was last seen.
 */
export function waitForSet(store: PeerStore, want: (set: PeerSet) => boolean, what: string, timeoutMs = 15_000): Promise<SeenSet> {
  const now = store.current();
  if (now !== undefined && want(now)) return Promise.resolve({ set: now, at: performance.now() });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last set: ${JSON.stringify(store.current()?.peers.map((p) => `${p.name}@${p.host}`) ?? null)}`));
    }, timeoutMs);
    const off = store.onChange((set) => {
      if (!want(set)) return;
      const at = performance.now();
      clearTimeout(timer);
      off();
      resolve({ set, at });
    });
  });
}

/**
 * Resolves with performance.now() when the store next enters `state` (observed, no polling).
 * Rejects after timeoutMs.
 */
export function waitForState(store: PeerStore, state: DiscoveryState, what: string, timeoutMs = 15_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; state: ${store.discoveryState()}`));
    }, timeoutMs);
    const off = store.observe({
      stateChanged: (now) => {
        if (now !== state) return;
        const at = performance.now();
        clearTimeout(timer);
        off();
        resolve(at);
      },
    });
  });
}

export interface RecordedRequest {
  /** performance.now() when it was sent. */
  readonly at: number;
  /** get (a list or one object), watch, or status (the readiness poll). */
  readonly kind: 'get' | 'watch' | 'status';
  readonly path: string;
}

/** Wraps a KubeHttp so the test sees every request a source sends, and when. */
export function recordRequests(inner: KubeHttp): { http: KubeHttp; requests: RecordedRequest[] } {
  const requests: RecordedRequest[] = [];
  const note = (kind: RecordedRequest['kind'], path: string): void => void requests.push({ at: performance.now(), kind, path });
  const http: KubeHttp = {
    getJson: (path, query, signal) => (note('get', path), inner.getJson(path, query, signal)),
    watch: (path, query, signal, onOpen, onEvent) => (note('watch', path), inner.watch(path, query, signal, onOpen, onEvent)),
    getStatus: (path, signal) => (note('status', path), inner.getStatus(path, signal)),
  };
  return { http, requests };
}

/** Median and worst of latency samples, for t.comment. */
export function summary(samples: readonly number[]): string {
  if (samples.length === 0) return 'no samples';
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median = sorted.length % 2 === 1 ? (sorted[Math.floor(mid)] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return `median ${median.toFixed(0)} ms, worst ${(sorted.at(-1) ?? 0).toFixed(0)} ms (n=${sorted.length})`;
}

/** A clock that moves only when the test says so. */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): { cancel(): void } {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return { cancel: () => void this.timers.delete(id) };
  }

  /** Pending timer delays from now, soonest first. */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }

  /** Moves time forward, firing due timers in order and letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      const due = [...this.timers.entries()].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
    await flush();
  }
}

/** Lets pending promise callbacks and I/O-free async steps run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

// ---------------------------------------------------------------- object builders (raw JSON, as the API sends)

export const REVISION = 'deployment.kubernetes.io/revision';

export function deploymentJson(name: string, uid: string, revision: string | undefined, matchLabels: Record<string, string> = { app: name }, rv = '1'): Record<string, unknown> {
  return {
    metadata: { name, uid, resourceVersion: rv, annotations: revision === undefined ? {} : { [REVISION]: revision } },
    spec: { selector: { matchLabels } },
  };
}

export function replicaSetJson(name: string, uid: string, deploymentUid: string | undefined, revision: string, rv = '1'): Record<string, unknown> {
  return {
    metadata: {
      name,
      uid,
      resourceVersion: rv,
      annotations: { [REVISION]: revision },
      ownerReferences: deploymentUid === undefined ? [] : [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'd', uid: deploymentUid, controller: true }],
    },
  };
}

export interface PodShape {
  readonly rsUid?: string;
  readonly ip?: string;
  readonly ready?: 'True' | 'False' | 'Unknown';
  readonly terminating?: boolean;
  readonly rv?: string;
}

export function podJson(name: string, shape: PodShape = {}): Record<string, unknown> {
  return {
    metadata: {
      name,
      uid: `uid-${name}`,
      resourceVersion: shape.rv ?? '1',
      ownerReferences: shape.rsUid === undefined ? [] : [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `rs-${shape.rsUid}`, uid: shape.rsUid, controller: true }],
      ...(shape.terminating === true ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    status: {
      phase: 'Running',
      ...(shape.ip === undefined ? {} : { podIP: shape.ip }),
      ...(shape.ready === undefined ? {} : { conditions: [{ type: 'Ready', status: shape.ready }] }),
    },
  };
}

// ---------------------------------------------------------------- a real control plane's fixtures

/** The etcd revision now, then a physical compaction at it: older resourceVersions answer 410. */
export async function compactEtcd(etcdUrl: string): Promise<number> {
  const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const url = new URL(path, etcdUrl);
    if (url.hostname !== '127.0.0.1') throw new Error(`refusing non-loopback etcd ${etcdUrl}`);
    const res = await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
    if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const range = await post('/v3/kv/range', { key: Buffer.from('\0').toString('base64'), count_only: true });
  const revision = Number((range['header'] as { revision?: string } | undefined)?.revision);
  if (!Number.isFinite(revision)) throw new Error(`no etcd revision in ${JSON.stringify(range)}`);
  await post('/v3/kv/compaction', { revision: String(revision), physical: true });
  return revision;
}
