// Answers checks: picks the peers to probe from the current snapshot and lets identical
// concurrent checks (same token, same origin) share one fan-out instead of multiplying probes.
import type { Logger } from 'pino';
import type { PeerStore } from '../discovery/peer-store.js';
import { peerKey, type Peer } from '../discovery/peer-set.js';
import { fanOut, type CheckResult, type FanOutContext } from './fan-out.js';

export interface CheckOutcome {
  readonly result: Promise<CheckResult>;
  /** True when this check joined one already in flight. */
  readonly shared: boolean;
}

/** Repeated misconfiguration warnings for one peer and status are kept to one per this period. */
const WARN_EVERY_MS = 10_000;

export class Checker {
  private readonly inflight = new Map<string, Promise<CheckResult>>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly lastWarned = new Map<string, number>();
  private readonly ctx: FanOutContext;

  constructor(
    private readonly store: PeerStore,
    ctx: Omit<FanOutContext, 'onUnexpected'>,
    private readonly log: Logger,
  ) {
    this.ctx = { ...ctx, onUnexpected: (peer, status) => this.warnUnexpected(peer, status) };
  }

  /** Peers to probe for a token issued at `origin` (a pod name or IP): everyone else. */
  static targets(peers: readonly Peer[], origin: string): readonly Peer[] {
    return peers.filter((p) => p.name !== origin && p.host !== origin);
  }

  /** Starts (or joins) a check. Callers must first make sure the store has a peer set. */
  check(token: string, origin: string): CheckOutcome {
    const key = `${origin}\n${token}`;
    const running = this.inflight.get(key);
    if (running !== undefined) return { result: running, shared: true };
    const peers = this.store.current()?.peers ?? [];
    const result = fanOut(Checker.targets(peers, origin), token, this.ctx);
    this.inflight.set(key, result);
    void result.then(() => {
      this.inflight.delete(key);
      if (this.inflight.size === 0) this.idleWaiters.splice(0).forEach((wake) => wake());
    });
    return { result, shared: false };
  }

  /** Resolves once no check is in flight (each is bounded by the hard deadline). */
  idle(): Promise<void> {
    if (this.inflight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private warnUnexpected(peer: Peer, status: number): void {
    const key = `${peerKey(peer)} ${status}`;
    const now = this.ctx.now();
    const last = this.lastWarned.get(key);
    if (last !== undefined && now - last < WARN_EVERY_MS) return;
    if (this.lastWarned.size >= 1024) this.lastWarned.clear(); // peers come and go: keep the memory bounded
    this.lastWarned.set(key, now);
    this.log.warn(
      { peer: peer.name, host: peer.host, port: peer.port, status, path: this.ctx.config.probe.path },
      'peer answered the probe with an unexpected status: check SYNCER_PROBE_PATH, SYNCER_PROBE_PORT and the peer’s probe location',
    );
  }
}
