// What to do after each probe of a peer: a pure decision, with randomness injected.
import type { Config } from '../config.js';
import type { PeerOutcome, ProbeResultKind } from '../model.js';

export type RetrySettings = Config['retry'];

export type PeerStep =
  | { readonly kind: 'resolve'; readonly outcome: PeerOutcome }
  | { readonly kind: 'retry'; readonly delayMs: number };

/**
 * Delay before retry number `retry` (1-based): exponential growth capped at maxDelayMs, then
 * spread by ±jitter so replicas that saw the same token at once do not retry in lockstep.
 */
export function retryDelay(retry: number, s: RetrySettings, random: () => number): number {
  const base = Math.min(s.maxDelayMs, s.delayMs * s.backoff ** (retry - 1));
  return Math.max(0, base * (1 + s.jitter * (2 * random() - 1)));
}

/** After `attempts` probes whose last one ended as `result`: resolve the peer, or retry after a delay. */
export function nextStep(result: ProbeResultKind, attempts: number, s: RetrySettings, random: () => number): PeerStep {
  switch (result) {
    case 'synced':
      return { kind: 'resolve', outcome: 'synced' };
    case 'departed':
      return { kind: 'resolve', outcome: 'departed' };
    case 'unexpected':
      // A 403 or 404 will not change by retrying: it is a misconfiguration, reported at once.
      return { kind: 'resolve', outcome: 'error' };
    case 'missing':
    case 'error':
      return attempts > s.maxRetries ? { kind: 'resolve', outcome: result } : { kind: 'retry', delayMs: retryDelay(attempts, s, random) };
  }
}

/** How long a peer that keeps answering 401 waits in total between its probes (no jitter). */
export function retryBudgetMs(s: RetrySettings): number {
  let total = 0;
  for (let retry = 1; retry <= s.maxRetries; retry++) total += retryDelay(retry, { ...s, jitter: 0 }, () => 0.5);
  return total;
}
