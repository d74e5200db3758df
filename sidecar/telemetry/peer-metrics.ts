// Per-peer series: how each other replica looks from this sidecar's checks (and its canary).
// Cardinality is bounded by design: a fixed set of series per peer of the current set, created
// at zero when the peer joins (so increase() sees its first failure) and all removed when it
// leaves — a rollout leaves no dead series behind. A fan-out that ends after a peer left does not
// bring its series back: reports are recorded only for peers of the current set, through handles
// bound once at join (prom-client would recreate a removed series on the next observe). The
// label is the peer's name (pod name; static/DNS: the configured name or address): never a
// token, fingerprint or origin.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CanaryPeerResult, CanaryReport, FanOutResult, Peer } from '../model.js';

/**
 * Seconds from a check's start to a peer's first 200. ≤ 5 ms: the token was there at the first
 * probe (one round trip); ≤ 25 ms: seen by the first retry (16 ms by default); 0.1–1 s: the lag
 * alerts' range; 2 s: past the default deadline (1.5 s). Seven buckets, because every bucket is
 * one more series per peer in every sidecar of the deployment.
 */
export const REPLICATION_DELAY_BUCKETS: readonly number[] = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2];

type Failed = 'missing' | 'error' | 'timeout';
const FAILED: readonly Failed[] = ['missing', 'error', 'timeout'];
const CANARY_RESULTS: readonly CanaryPeerResult[] = ['arrived', 'missing', 'error', 'timeout'];

interface Inc {
  inc(): void;
}

interface CanaryHandles {
  readonly results: Readonly<Record<CanaryPeerResult, Inc>>;
  readonly delay: { set(value: number): void };
}

interface PeerHandles {
  readonly delay: { observe(value: number): void };
  readonly failed: Readonly<Record<Failed, Inc>>;
  canary: CanaryHandles | undefined;
}

export class PeerMetrics {
  private readonly byName = new Map<string, PeerHandles>();
  private readonly delay: Histogram<'peer'>;
  private readonly outcomes: Counter<'peer' | 'outcome'>;
  private canary: { readonly results: Counter<'peer' | 'result'>; readonly delay: Gauge<'peer'> } | undefined;

  constructor(private readonly registry: Registry) {
    const registers = [registry];
    this.delay = new Histogram({
      name: 'syncer_peer_replication_delay_seconds',
      help: "Per peer: time from a check's start to that peer's first 200, for checks that found the token there.",
      labelNames: ['peer'],
      buckets: [...REPLICATION_DELAY_BUCKETS],
      registers,
    });
    this.outcomes = new Counter({
      name: 'syncer_peer_check_outcomes_total',
      help: 'Per peer: checks that ended with that peer missing (401 to the end), error or timeout.',
      labelNames: ['peer', 'outcome'],
      registers,
    });
  }

  /** The canary is on: its per-peer series exist from now on, for every peer of the set. */
  enableCanary(): void {
    const registers = [this.registry];
    this.canary = {
      results: new Counter({
        name: 'syncer_canary_peer_results_total',
        help: 'Per peer: canary runs in which the key arrived at that peer, or ended missing, error or timeout there.',
        labelNames: ['peer', 'result'],
        registers,
      }),
      delay: new Gauge({
        name: 'syncer_canary_peer_delay_seconds',
        help: "Per peer: how long the last canary key that reached that peer took, from the own replica's write to the peer's first 200.",
        labelNames: ['peer'],
        registers,
      }),
    };
    for (const [name, handles] of this.byName) handles.canary = this.bindCanary(name);
  }

  /**
   * The peer set changed: series for the peers that joined, none left for those that went. The
   * sidecar's own pod (in the set under kubernetes and static discovery) is no peer here: its
   * checks never wait for it.
   */
  peersChanged(peers: readonly Peer[], self: { readonly name: string; readonly ip: string | undefined }): void {
    const names = new Set<string>();
    for (const peer of peers) if (peer.name !== self.name && peer.host !== self.ip) names.add(peer.name);
    for (const name of this.byName.keys()) if (!names.has(name)) this.drop(name);
    for (const name of names) if (!this.byName.has(name)) this.byName.set(name, this.bind(name));
  }

  /** A fan-out of the checks ended: each peer's delay or failure (departed peers and peers gone since: nothing). */
  checked(result: FanOutResult): void {
    for (const report of result.peers) {
      const handles = this.byName.get(report.name);
      if (handles === undefined) continue;
      switch (report.outcome) {
        case 'synced':
          if (report.syncedAtMs !== null) handles.delay.observe(report.syncedAtMs / 1000);
          break;
        case 'missing':
        case 'error':
        case 'timeout':
          handles.failed[report.outcome].inc();
          break;
        case 'departed':
          break;
      }
    }
  }

  /** A canary run ended: each peer's result, and the delay of those it reached. */
  canaryRan(report: CanaryReport): void {
    for (const peer of report.peers) {
      const handles = this.byName.get(peer.name)?.canary;
      if (handles === undefined) continue;
      handles.results[peer.result].inc();
      if (peer.delayMs !== null) handles.delay.set(peer.delayMs / 1000);
    }
  }

  private bind(name: string): PeerHandles {
    this.delay.zero({ peer: name });
    const failed = (outcome: Failed): Inc => {
      const handle = this.outcomes.labels(name, outcome);
      handle.inc(0);
      return handle;
    };
    return {
      delay: this.delay.labels(name),
      failed: { missing: failed('missing'), error: failed('error'), timeout: failed('timeout') },
      canary: this.canary === undefined ? undefined : this.bindCanary(name),
    };
  }

  private bindCanary(name: string): CanaryHandles {
    const canary = this.canary!;
    const result = (r: CanaryPeerResult): Inc => {
      const handle = canary.results.labels(name, r);
      handle.inc(0);
      return handle;
    };
    // The delay gauge appears with the first arrival: a zero would read as "instant".
    return {
      results: { arrived: result('arrived'), missing: result('missing'), error: result('error'), timeout: result('timeout') },
      delay: canary.delay.labels(name),
    };
  }

  private drop(name: string): void {
    this.byName.delete(name);
    this.delay.remove({ peer: name });
    for (const outcome of FAILED) this.outcomes.remove({ peer: name, outcome });
    if (this.canary === undefined) return;
    for (const result of CANARY_RESULTS) this.canary.results.remove({ peer: name, result });
    this.canary.delay.remove({ peer: name });
  }
}
