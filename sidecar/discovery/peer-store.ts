// Holds the current peer-set snapshot and discovery's state. Sources publish whole sets and
// report failures here; the store diffs, versions and tells its observers what happened, so
// every source behaves alike for operators (app.ts wires logs and metrics to it).
import type { DiscoveryState, Peer, PeerSet, PeerSetDiff } from '../model.js';
import { diffPeers, normalizePeers } from './peer-set.js';

export interface PeerStoreObserver {
  /** A new snapshot replaced the last one (never called for an equal set). */
  changed?(set: PeerSet, diff: PeerSetDiff): void;
  /** Discovery's state changed; `reason` says why it went stale. */
  stateChanged?(state: DiscoveryState, previous: DiscoveryState, reason: string | undefined): void;
  /** A source failed (list, watch, resolve, …); reported whether or not the state changed. */
  failed?(kind: string, reason: string): void;
}

export class PeerStore {
  private snapshot: PeerSet | undefined;
  private state: DiscoveryState = 'pending';
  private readonly observers = new Set<PeerStoreObserver>();
  private readonly firstSet: Promise<PeerSet>;
  private resolveFirst!: (set: PeerSet) => void;

  /**
   * @param observerFailed told when an observer throws, so that no observer's bug reaches the
   *   source that published (or the other observers). By default the exception is rethrown.
   */
  constructor(
    private readonly observerFailed: (err: unknown) => void = (err) => {
      throw err;
    },
  ) {
    this.firstSet = new Promise((resolve) => (this.resolveFirst = resolve));
  }

  /** The latest snapshot, or undefined until discovery produced its first set. */
  current(): PeerSet | undefined {
    return this.snapshot;
  }

  discoveryState(): DiscoveryState {
    return this.state;
  }

  /** Resolves with the first published set. */
  ready(): Promise<PeerSet> {
    return this.firstSet;
  }

  /** Subscribes; observers are told in the order they subscribed. Returns the unsubscribe function. */
  observe(observer: PeerStoreObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** Shorthand for observe({ changed }). */
  onChange(listener: (set: PeerSet, diff: PeerSetDiff) => void): () => void {
    return this.observe({ changed: listener });
  }

  /** Replaces the peer set. A set equal to the current one only refreshes freshness. */
  publish(peers: Iterable<Peer>): void {
    const next = normalizePeers(peers);
    this.setState('synced', undefined);
    const before = this.snapshot;
    const diff = diffPeers(before?.peers ?? [], next);
    if (before !== undefined && diff.added.length === 0 && diff.removed.length === 0) return;
    const set: PeerSet = Object.freeze({ version: (before?.version ?? 0) + 1, peers: next });
    this.snapshot = set;
    if (before === undefined) this.resolveFirst(set);
    this.tell((o) => o.changed?.(set, diff));
  }

  /** A source failed: counted, and once it had a set, the last set keeps serving, marked stale. */
  reportFailure(kind: string, reason: string): void {
    this.tell((o) => o.failed?.(kind, reason));
    if (this.state === 'synced') this.setState('stale', reason);
  }

  private setState(state: DiscoveryState, reason: string | undefined): void {
    const previous = this.state;
    if (previous === state) return;
    this.state = state;
    this.tell((o) => o.stateChanged?.(state, previous, reason));
  }

  private tell(call: (o: PeerStoreObserver) => void): void {
    for (const o of this.observers) {
      try {
        call(o);
      } catch (err) {
        this.observerFailed(err);
      }
    }
  }
}
