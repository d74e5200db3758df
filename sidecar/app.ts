// Wires discovery, probing, checking and both listeners together, and owns the shutdown order.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { Checker } from './check/checker.js';
import { retryBudgetMs } from './check/retry-policy.js';
import type { Config, HostPort } from './config.js';
import { createPeerSource } from './discovery/index.js';
import { PeerStore } from './discovery/peer-store.js';
import type { PeerSource, SourceDeps } from './discovery/source.js';
import { createApiServer } from './http/api-server.js';
import { createOpsServer } from './http/ops-server.js';
import { PeerPools } from './probe/peer-pools.js';
import { Telemetry } from './telemetry/metrics.js';

export interface AppOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly telemetry?: Telemetry;
  /** Replaces the source SYNCER_DISCOVERY names (tests). */
  readonly source?: (deps: SourceDeps) => PeerSource;
  readonly now?: () => number;
  readonly random?: () => number;
}

export interface Listening {
  readonly api: AddressInfo;
  readonly ops: AddressInfo;
}

export class App {
  readonly store: PeerStore;
  readonly telemetry: Telemetry;
  private readonly pools: PeerPools;
  private readonly checker: Checker;
  private readonly source: PeerSource;
  private readonly api: Server;
  private readonly ops: Server;
  private draining = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: AppOptions) {
    const { config, log } = options;
    this.telemetry = options.telemetry ?? new Telemetry();
    this.store = new PeerStore(log, this.telemetry);
    this.pools = new PeerPools(config.probe);
    const now = options.now ?? (() => performance.now());
    this.checker = new Checker(
      this.store,
      { config, pools: this.pools, telemetry: this.telemetry, now, random: options.random ?? Math.random },
      log,
    );
    this.store.onChange((set) => this.pools.retain(set.peers));
    const deps: SourceDeps = { config, store: this.store, log, telemetry: this.telemetry };
    this.source = (options.source ?? createPeerSource)(deps);
    const isDraining = (): boolean => this.draining;
    this.api = createApiServer({
      checker: this.checker,
      store: this.store,
      telemetry: this.telemetry,
      log,
      defaultOrigin: config.pod.name,
      now,
      isDraining,
    });
    this.ops = createOpsServer({ store: this.store, telemetry: this.telemetry, isDraining });
  }

  async start(): Promise<Listening> {
    const { config, log } = this.options;
    const [api, ops] = await Promise.all([listen(this.api, config.listen), listen(this.ops, config.ops)]);
    this.source.start();
    const budget = retryBudgetMs(config.retry);
    if (budget >= config.hardTimeoutMs) {
      log.warn(
        { retryBudgetMs: Math.round(budget), hardTimeoutMs: config.hardTimeoutMs },
        'retries outlast the hard deadline: a replica that never gets a token is reported Timeout, not missing',
      );
    }
    log.info({ api: `${api.address}:${api.port}`, ops: `${ops.address}:${ops.port}`, discovery: config.discovery.mode, node: process.version }, 'listening');
    return { api, ops };
  }

  /** Readiness goes 503, new checks are refused, in-flight checks finish, then everything closes. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const { log } = this.options;
    this.draining = true;
    log.info('shutting down: refusing new checks, finishing in-flight ones');
    const apiClosed = closeServer(this.api);
    await this.checker.idle();
    // Idle keep-alive connections from nginx would hold the server open; in-flight ones are done.
    this.api.closeAllConnections();
    await apiClosed;
    await Promise.all([this.source.stop(), this.pools.close()]);
    this.ops.closeAllConnections();
    await closeServer(this.ops);
    log.info('stopped');
  }
}

async function listen(server: Server, at: HostPort): Promise<AddressInfo> {
  server.listen(at.port, at.host);
  await once(server, 'listening');
  return server.address() as AddressInfo;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
