// Holds the current peer-set snapshot. Sources publish whole sets; the store diffs, versions,
// logs and counts changes in one place, so every source behaves alike for operators.
import type { Logger } from 'pino';
import type { Telemetry } from '../telemetry/metrics.js';
import { diffPeers, normalizePeers, type Peer, type PeerSet, type PeerSetDiff } from './peer-set.js';

export type DiscoveryState = 'pending' | 'synced' | 'stale';
export type PeerSetListener = (set: PeerSet, diff: PeerSetDiff) => void;

export class PeerStore {
  private snapshot: PeerSet | undefined;
  private state: DiscoveryState = 'pending';
  private readonly listeners = new Set<PeerSetListener>();
  private readonly firstSet: Promise<PeerSet>;
  private resolveFirst!: (set: PeerSet) => void;

  constructor(
    private readonly log: Logger,
    private readonly telemetry: Telemetry,
  ) {
    this.firstSet = new Promise((resolve) => (this.resolveFirst = resolve));
    telemetry.discoveryState(this.state);
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

  onChange(listener: PeerSetListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Replaces the peer set. A set equal to the current one only refreshes freshness. */
  publish(peers: Iterable<Peer>): void {
    const next = normalizePeers(peers);
    this.markSynced();
    const before = this.snapshot;
    const diff = diffPeers(before?.peers ?? [], next);
    if (before !== undefined && diff.added.length === 0 && diff.removed.length === 0) return;
    const set: PeerSet = Object.freeze({ version: (before?.version ?? 0) + 1, peers: next });
    this.snapshot = set;
    this.telemetry.peerSetChanged(set.peers.length, diff);
    this.log.info(
      {
        version: set.version,
        peers: set.peers.map((p) => p.name),
        added: diff.added.map((p) => p.name),
        removed: diff.removed.map((p) => p.name),
      },
      'peer set changed',
    );
    if (before === undefined) this.resolveFirst(set);
    for (const listener of this.listeners) listener(set, diff);
  }

  /** Discovery lost its source; the last set keeps serving, and logs and metrics say so. */
  markStale(reason: string): void {
    if (this.state !== 'synced') return;
    this.state = 'stale';
    this.telemetry.discoveryState(this.state);
    this.log.warn({ reason, peers: this.snapshot?.peers.length ?? 0 }, 'discovery is stale; serving the last known peer set');
  }

  private markSynced(): void {
    if (this.state === 'synced') return;
    if (this.state === 'stale') this.log.info('discovery recovered');
    this.state = 'synced';
    this.telemetry.discoveryState(this.state);
  }
}
