// Operations on peer-set snapshots: the diff between two, and the normal form every set is
// published in. The types themselves are the shared model's (model.ts).
import { peerKey, type Peer, type PeerSetDiff } from '../model.js';

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
