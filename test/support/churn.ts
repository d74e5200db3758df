// The churn schedule the churn and soak tests share: turn by turn, one of the churning peers is
// removed, added back, or replaced (at a new address). Deterministic, so a failure replays the
// same sequence.

export type ChurnAction = 'remove' | 'addBack' | 'replace';

const ACTIONS: readonly ChurnAction[] = ['remove', 'addBack', 'replace'];

/** Turn `turn` of a schedule over `slots` churning peers: which one, and what happens to it. */
export function churnTurn(turn: number, slots: number): { readonly slot: number; readonly action: ChurnAction } {
  return { slot: turn % slots, action: ACTIONS[Math.floor(turn / slots) % ACTIONS.length]! };
}
