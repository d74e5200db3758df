// The immutable peer-set snapshot every discovery source produces and the checker reads.

export interface Peer {
  /** Pod name (kubernetes), configured name (static) or address (dns). */
  readonly name: string;
  /** IP address or host name to probe. */
  readonly host: string;
  readonly port: number;
}

export interface PeerSet {
  /** Increases by one with every published change; 1 is the first set. */
  readonly version: number;
  readonly peers: readonly Peer[];
}

/** Stable identity of a peer's endpoint: one connection pool per key. */
export function peerKey(peer: Peer): string {
  return `${peer.name}@${peer.host}:${peer.port}`;
}

export interface PeerSetDiff {
  readonly added: readonly Peer[];
  readonly removed: readonly Peer[];
}

export function diffPeers(before: readonly Peer[], after: readonly Peer[]): PeerSetDiff {
  const beforeKeys = new Set(before.map(peerKey));
  const afterKeys = new Set(after.map(peerKey));
  return {
    added: after.filter((p) => !beforeKeys.has(peerKey(p))),
    removed: before.filter((p) => !afterKeys.has(peerKey(p))),
  };
}

/** Sorted by name so equal sets compare equal and logs read in a stable order. */
export function normalizePeers(peers: Iterable<Peer>): readonly Peer[] {
  return Object.freeze([...peers].map((p) => Object.freeze({ ...p })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
}
