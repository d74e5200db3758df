// Wires discovery, probing, checking and both listeners together, subscribes logs and metrics
// to what they report, and owns the shutdown order.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { Canary, canarySettings } from './canary/canary.js';
import { TokenApi } from './canary/token-api.js';
import { Checker, checkerSettings } from './check/checker.js';
import { probeTimes, retryWindowMs } from './check/retry-policy.js';
import type { CanaryConfig, Config, HostPort } from './config.js';
import { createPeerSource } from './discovery/index.js';
import { PeerStore } from './discovery/peer-store.js';
import type { PeerSource, SourceDeps } from './discovery/source.js';
import { createApiServer } from './http/api-server.js';
import { createOpsServer } from './http/ops-server.js';
import { PeerChannels } from './probe/peer-channels.js';
import { loadTlsMaterial, watchTlsMaterial, type TlsWatcher } from './probe/tls-material.js';
import { CanaryLog } from './telemetry/canary-log.js';
import { CheckLog } from './telemetry/check-log.js';
import { DiscoveryLog } from './telemetry/discovery-log.js';
import { readMemoryLimit } from './telemetry/memory-limit.js';
import { Telemetry } from './telemetry/metrics.js';
import { onUnexpected, reportUnexpected } from './unexpected.js';

const TLS_RELOAD_MS = 10_000;
/** Bound of one canary write to this pod's token API (loopback: it answers in a millisecond). */
const CANARY_WRITE_TIMEOUT_MS = 2_000;

/** Replication lag the retry schedule should cover at least, or the sidecar warns at start. */
const MIN_LAG_COVERED_MS = 100;

export interface AppOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly telemetry?: Telemetry;
  /** Replaces the source SYNCER_DISCOVERY names (tests). */
  readonly source?: (deps: SourceDeps) => PeerSource;
  readonly now?: () => number;
  readonly random?: () => number;
  /** How often TLS files are read again to pick up a rotated Secret (default 10 s). */
  readonly tlsReloadMs?: number;
  /** The container's memory limit (default: read from the cgroup); undefined: unlimited. */
  readonly memoryLimit?: () => number | undefined;
}

export interface Listening {
  readonly api: AddressInfo;
  readonly ops: AddressInfo;
}

export class App {
  readonly store: PeerStore;
  readonly telemetry: Telemetry;
  private readonly channels: PeerChannels;
  private readonly checker: Checker;
  private readonly source: PeerSource;
  private readonly api: Server;
  private readonly ops: Server;
  private readonly canary: { readonly runs: Canary; readonly api: TokenApi; readonly config: CanaryConfig } | undefined;
  private tlsWatcher: TlsWatcher | undefined;
  private draining = false;
  /** Requests the check listener has received: shutdown waits until they stop coming. */
  private requestsSeen = 0;
  private stopping: Promise<void> | undefined;
  private readonly stopReporting: () => void;

  constructor(private readonly options: AppOptions) {
    const { config, log } = options;
    const now = options.now ?? (() => performance.now());
    const telemetry = (this.telemetry = options.telemetry ?? new Telemetry());
    const checkLog = new CheckLog(log, config.probe.path, now);
    // What the guarded entry points caught (unexpected.ts): one error line and one count each.
    this.stopReporting = onUnexpected(({ source, where, err }) => {
      log.error({ err, source, where }, 'unexpected error, contained: the sidecar goes on with its last good state');
      telemetry.unexpected(source);
    });

    this.channels = new PeerChannels(config.probe, now);
    this.checker = new Checker(
      checkerSettings(config),
      this.channels,
      { now, random: options.random ?? Math.random },
      { fanOutDone: each('fan-out', (r) => telemetry.fanOutDone(r), (r) => checkLog.fanOutDone(r)) },
    );
    telemetry.countInFlight(() => this.checker.waiting);
    telemetry.ownPod(config.pod);
    telemetry.memoryLimit((options.memoryLimit ?? readMemoryLimit)());

    this.store = new PeerStore((err) => reportUnexpected('event', 'an observer of the peer set', err));
    // The checker first: its channels must follow a new set before anyone reports on it.
    this.store.observe({ changed: (set, diff) => this.checker.peersChanged(set, diff) });
    this.store.observe(telemetry);
    this.store.observe(new DiscoveryLog(log));
    this.source = (options.source ?? createPeerSource)({ config, store: this.store, log });

    if (config.canary !== undefined) {
      const api = new TokenApi(config.canary.url, CANARY_WRITE_TIMEOUT_MS);
      const canaryLog = new CanaryLog(log, config.canary.intervalMs, now);
      telemetry.canaryOn();
      const runs = new Canary(
        canarySettings(config, config.canary),
        {
          targets: () => (this.store.current() === undefined ? undefined : this.checker.peersFrom(config.pod.name)),
          write: (key, value, expireMs) => api.write(key, value, expireMs),
          now,
          wallClock: Date.now,
          random: options.random ?? Math.random,
        },
        {
          ran: each('canary', (r) => telemetry.canaryDone(r), (r) => canaryLog.ran(r)),
        },
      );
      this.canary = { runs, api, config: config.canary };
    }

    const isDraining = (): boolean => this.draining;
    this.api = createApiServer({
      checker: this.checker,
      hasPeers: () => this.store.current() !== undefined,
      observer: {
        wantsFingerprint: (cached) => checkLog.wantsFingerprint(cached),
        answered: each('check', (e) => telemetry.answered(e), (e) => checkLog.answered(e)),
        rejected: each('rejection', (reason) => telemetry.rejected(reason)),
      },
      log,
      defaultOrigin: config.pod.name,
      now,
      isDraining,
    });
    this.api.on('request', () => this.requestsSeen++);
    this.ops = createOpsServer({
      current: () => this.store.current(),
      discoveryState: () => this.store.discoveryState(),
      renderMetrics: () => telemetry.metrics(),
      metricsContentType: telemetry.contentType,
      isDraining,
      now,
      canary: () => this.canary?.runs.lastReport,
    });
  }

  async start(): Promise<Listening> {
    const { config, log } = this.options;
    await this.loadTls();
    const [api, ops] = await Promise.all([listen(this.api, config.listen), listen(this.ops, config.ops)]);
    // From here a server's 'error' is a failed accept (ENOBUFS, ENOMEM…; EMFILE libuv absorbs):
    // without a listener it would end the process. The listener stays open and goes on accepting.
    this.api.on('error', (err) => reportUnexpected('event', 'the check listener', err));
    this.ops.on('error', (err) => reportUnexpected('event', 'the ops listener', err));
    this.source.start();
    if (this.canary !== undefined) {
      this.canary.runs.start();
      log.info(this.canary.config, 'canary on');
    }
    const times = probeTimes(config.retry, retryWindowMs(config.hardTimeoutMs, config.probe.timeoutMs));
    const lastProbeMs = times[times.length - 1]!;
    if (lastProbeMs < MIN_LAG_COVERED_MS) {
      log.warn(
        { lastProbeMs: Math.round(lastProbeMs), hardTimeoutMs: config.hardTimeoutMs, probeTimeoutMs: config.probe.timeoutMs, maxRetries: config.retry.maxRetries },
        'retries stop early: a token that takes longer than lastProbeMs to replicate is reported missing; raise SYNCER_HARD_TIMEOUT_MS or SYNCER_MAX_RETRIES',
      );
    }
    log.info({ api: `${api.address}:${api.port}`, ops: `${ops.address}:${ops.port}`, discovery: config.discovery.mode, node: process.version }, 'listening');
    return { api, ops };
  }

  /** https probes with our own CA, client certificate or server name: load them, then follow rotations. */
  private async loadTls(): Promise<void> {
    const { config, log } = this.options;
    const files = config.probe.tls;
    if (config.probe.scheme !== 'https' || Object.values(files).every((v) => v === undefined)) return;
    const tls = await loadTlsMaterial(files);
    this.channels.setTls(tls.options);
    log.info({ ca: files.caFile, cert: files.certFile, servername: files.servername }, 'probing peers over TLS');
    this.tlsWatcher = watchTlsMaterial(
      files,
      tls,
      this.options.tlsReloadMs ?? TLS_RELOAD_MS,
      (next) => {
        this.channels.setTls(next.options);
        log.info({ ca: files.caFile, cert: files.certFile }, 'TLS files changed: new connections use them');
      },
      (err) => log.warn({ err: err.message }, 'TLS files could not be read again; keeping the material in use'),
    );
  }

  /** Readiness goes 503, new checks get 503, in-flight checks finish, then everything closes. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /**
   * Resolves once no check is in flight and QUIET_TURNS event-loop turns brought no new request
   * (accepting a queued connection takes one turn, reading its request the next), or after
   * QUIESCE_MAX_MS of requests that keep coming.
   */
  private async quiesce(): Promise<void> {
    const until = performance.now() + QUIESCE_MAX_MS;
    let quiet = 0;
    while (quiet < QUIET_TURNS && performance.now() < until) {
      await this.checker.idle();
      const seen = this.requestsSeen;
      await new Promise((resolve) => setImmediate(resolve));
      quiet = this.requestsSeen === seen ? quiet + 1 : 0;
    }
  }

  private async shutdown(): Promise<void> {
    const { log } = this.options;
    this.draining = true;
    log.info('shutting down: refusing new checks, finishing in-flight ones');
    // No canary run starts any more; one running ends at its deadline, or when the channels close.
    const canaryStopped = this.canary?.runs.stop();
    // The listener stays open while checks finish and until the requests already sent have been
    // read: connections still in the accept queue and requests still in socket buffers are
    // answered (503, Connection: close). Closing earlier resets them (unread data → RST).
    await this.quiesce();
    const apiClosed = closeServer(this.api);
    this.api.closeIdleConnections();
    await apiClosed;
    this.tlsWatcher?.stop();
    await Promise.all([this.source.stop(), this.channels.close()]);
    await canaryStopped;
    await this.canary?.api.close();
    this.ops.closeAllConnections();
    await closeServer(this.ops);
    log.info('stopped');
    this.stopReporting();
  }
}

/** Turns of the event loop in a row without a new request before the check listener closes. */
const QUIET_TURNS = 3;
/** The most time shutdown waits for the listener to go quiet (in-flight checks end on their own). */
const QUIESCE_MAX_MS = 2_000;

/**
 * Composes observers of one event. Each is called in turn; one that throws is reported and reaches
 * neither the others nor the check that reported the event. Events carry one argument, so the
 * call allocates nothing: this runs for every check.
 */
function each<E>(what: string, ...fns: Array<(event: E) => void>): (event: E) => void {
  return (event: E): void => {
    for (const fn of fns) {
      try {
        fn(event);
      } catch (err) {
        reportUnexpected('event', `an observer of ${what}`, err);
      }
    }
  };
}

async function listen(server: Server, at: HostPort): Promise<AddressInfo> {
  server.listen(at.port, at.host);
  await once(server, 'listening');
  return server.address() as AddressInfo;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
