// The verdict rule, as one pure function. The strings are a contract: nginx configs match on them.

export type Verdict = 'Synced' | 'Partialy' | 'NotSynced' | 'Timeout';
export type PeerOutcome = 'synced' | 'missing' | 'error' | 'timeout';

/**
 * Any peer unresolved at the deadline → Timeout; all synced (or no peers) → Synced;
 * more than half synced → Partialy; otherwise, exactly half included → NotSynced.
 */
export function verdictOf(outcomes: readonly PeerOutcome[]): Verdict {
  let synced = 0;
  for (const outcome of outcomes) {
    if (outcome === 'timeout') return 'Timeout';
    if (outcome === 'synced') synced++;
  }
  if (synced === outcomes.length) return 'Synced';
  return synced * 2 > outcomes.length ? 'Partialy' : 'NotSynced';
}
