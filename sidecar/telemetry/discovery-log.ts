// What a person tailing one pod's logs sees of discovery: every peer-set change with the names
// added and removed, and when discovery goes stale or recovers. An observer of the peer store.
import type { Logger } from 'pino';
import type { PeerStoreObserver } from '../discovery/peer-store.js';
import type { DiscoveryState, PeerSet, PeerSetDiff } from '../model.js';

export class DiscoveryLog implements PeerStoreObserver {
  /** Peers in the current set, for the stale line. */
  private peers = 0;

  constructor(private readonly log: Logger) {}

  changed(set: PeerSet, diff: PeerSetDiff): void {
    this.peers = set.peers.length;
    this.log.info(
      { version: set.version, peers: set.peers.map((p) => p.name), added: diff.added.map((p) => p.name), removed: diff.removed.map((p) => p.name) },
      'peer set changed',
    );
  }

  stateChanged(state: DiscoveryState, previous: DiscoveryState, reason: string | undefined): void {
    if (state === 'stale') this.log.warn({ reason, peers: this.peers }, 'discovery is stale; serving the last known peer set');
    else if (state === 'synced' && previous === 'stale') this.log.info('discovery recovered');
  }
}
