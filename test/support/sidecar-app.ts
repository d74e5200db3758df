// Runs the sidecar in-process with static peers and captured logs, and sends checks to it.
import { Writable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { App, type AppOptions } from '../../sidecar/app.js';
import { parseConfig, type Env } from '../../sidecar/config.js';
import { createLogger } from '../../sidecar/telemetry/logger.js';
import { Telemetry } from '../../sidecar/telemetry/metrics.js';
import type { PeerSource, SourceDeps } from '../../sidecar/discovery/source.js';
import type { ReplicaServer } from './replica-server.js';

export interface RunningSidecar {
  readonly app: App;
  readonly apiUrl: string;
  readonly opsUrl: string;
  /** Every log line written so far, raw. */
  readonly logs: string[];
  stop(): Promise<void>;
}

export function peersEnv(replicas: readonly ReplicaServer[], name = (i: number) => `pod-${i}`): string {
  return replicas.map((r, i) => `${name(i)}=${r.host}:${r.port}`).join(',');
}

/** App options a test may set besides the configuration: the clock, randomness, TLS reload period, memory limit. */
export type TestAppOptions = Pick<AppOptions, 'now' | 'random' | 'tlsReloadMs' | 'telemetry' | 'memoryLimit'>;

export async function startSidecar(env: Env, source?: (deps: SourceDeps) => PeerSource, options: TestAppOptions = {}): Promise<RunningSidecar> {
  const parsed = parseConfig(
    { SYNCER_LISTEN_ADDR: '127.0.0.1:0', SYNCER_OPS_ADDR: '127.0.0.1:0', LOG_LEVEL: 'debug', POD_NAME: 'pod-0', ...env },
    { hostname: 'test-host', serviceAccountNamespace: undefined },
  );
  if (!parsed.ok) throw new Error(`bad test config: ${parsed.errors.join('; ')}`);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
      done();
    },
  });
  const app = new App({ telemetry: new Telemetry({ defaultMetrics: false }), ...options, config: parsed.config, log: createLogger(parsed.config, sink), ...(source ? { source } : {}) });
  const { api, ops } = await app.start();
  return { app, apiUrl: `http://127.0.0.1:${api.port}`, opsUrl: `http://127.0.0.1:${ops.port}`, logs, stop: () => app.stop() };
}

export interface CheckReply {
  readonly status: number;
  readonly tokenStatus: string | undefined;
  readonly body: {
    checkId?: string;
    verdict?: string;
    durationMs?: number;
    shared?: boolean;
    cached?: boolean;
    error?: string;
    peers?: Array<{ name: string; outcome: string; attempts: number; lastStatus: number | null; lastError: string | null }>;
  };
  /** Wall time from sending to the full answer, in ms. */
  readonly elapsedMs: number;
}

export interface SendOptions {
  /** On a connection closed after the answer (for tests that count sockets); by default a kept-alive one. */
  readonly close?: boolean;
  /** Whose connections carry it (default undici's global agent): a test that counts the server's sockets closes its own. */
  readonly dispatcher?: Dispatcher;
}

export async function sendCheck(apiUrl: string, headers: Record<string, string>, method: 'GET' | 'POST' = 'GET', path = '/v1/synced', options: SendOptions = {}): Promise<CheckReply> {
  const started = performance.now();
  const res = await request(`${apiUrl}${path}`, { method, headers, reset: options.close === true, dispatcher: options.dispatcher });
  const text = await res.body.text();
  const tokenStatus = res.headers['x-token-status'];
  return {
    status: res.statusCode,
    tokenStatus: typeof tokenStatus === 'string' ? tokenStatus : undefined,
    body: text === '' ? {} : (JSON.parse(text) as CheckReply['body']),
    elapsedMs: performance.now() - started,
  };
}
