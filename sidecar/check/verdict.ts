// The verdict rule, as pure functions. The strings are a contract: nginx configs match on them.
import type { PeerOutcome, Verdict } from '../model.js';

/** What a peer's answers said: 401 → missing; a 5xx or a failed connection → error. */
export type Answer = 'missing' | 'error';

/**
 * The outcome of a peer whose probing ends on a probe that got no answer — the check ended first
 * (the deadline, or nobody waits any more), or its retries ran out on a probe timeout: departed
 * if it left the set; else what its last answer said; `timeout` only if it never answered at all.
 * A peer that answered and then had a later probe cut has told us where it stands: a busy event
 * loop that delays that probe changes when the check ends, not what it says.
 */
export function unresolvedOutcome(departed: boolean, lastAnswer: Answer | undefined): PeerOutcome {
  if (departed) return 'departed';
  return lastAnswer ?? 'timeout';
}

/**
 * Peers that left the set during the check are not counted. Of the rest: any that never answered
 * (timeout) → Timeout; all synced (or none left) → Synced; more than half synced → Partialy;
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
