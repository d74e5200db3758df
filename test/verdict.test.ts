import t from 'tap';
import { unresolvedOutcome, verdictOf } from '../sidecar/check/verdict.js';
import type { PeerOutcome } from '../sidecar/model.js';

const s: PeerOutcome = 'synced', m: PeerOutcome = 'missing', e: PeerOutcome = 'error', to: PeerOutcome = 'timeout';
const table: Array<[PeerOutcome[], string]> = [
  [[], 'Synced'], // no peers: nothing can be missing
  [[s], 'Synced'],
  [[s, s, s], 'Synced'],
  [[m], 'NotSynced'],
  [[e], 'NotSynced'],
  [[s, m], 'NotSynced'], // exactly half is not "more than half"
  [[s, s, m], 'Partialy'],
  [[s, s, e], 'Partialy'],
  [[s, m, e], 'NotSynced'],
  [[s, s, m, m], 'NotSynced'],
  [[s, s, s, m], 'Partialy'],
  [[to], 'Timeout'],
  [[s, s, s, to], 'Timeout'], // any timeout wins, even over a majority
  [[m, e, to], 'Timeout'],
];
for (const [outcomes, expected] of table) {
  t.equal(verdictOf(outcomes), expected, `[${outcomes.join(',')}] → ${expected}`);
}

// A peer still unresolved when its check ends: what it last said decides, not what the clock cut.
const unresolved: Array<[boolean, 'missing' | 'error' | undefined, PeerOutcome]> = [
  [false, undefined, 'timeout'], // never answered: the slow one
  [false, 'missing', 'missing'], // answered 401, then a probe was cut: still missing
  [false, 'error', 'error'], // answered 5xx or refused, then a probe was cut: still error
  [true, undefined, 'departed'], // left the set: not judged, whatever it said
  [true, 'missing', 'departed'],
  [true, 'error', 'departed'],
];
for (const [departed, lastAnswer, expected] of unresolved) {
  t.equal(unresolvedOutcome(departed, lastAnswer), expected, `departed ${departed}, last answer ${lastAnswer ?? 'none'} → ${expected}`);
}
