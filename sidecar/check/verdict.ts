// The verdict rule, as one pure function. The strings are a contract: nginx configs match on them.
import type { PeerOutcome, Verdict } from '../model.js';

/**
 * Peers that left the set during the check are not counted. Of the rest: any unresolved at the
 * deadline → Timeout; all synced (or none left) → Synced; more than half synced → Partialy;
 * otherwise, exactly half included → NotSynced.
 */
export function verdictOf(outcomes: readonly PeerOutcome[]): Verdict {
  let synced = 0;
  let counted = 0;
  for (const outcome of outcomes) {
    if (outcome === 'departed') continue;
    if (outcome === 'timeout') return 'Timeout';
    counted++;
    if (outcome === 'synced') synced++;
  }
  if (synced === counted) return 'Synced';
  return synced * 2 > counted ? 'Partialy' : 'NotSynced';
}
