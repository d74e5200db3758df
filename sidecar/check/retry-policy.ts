// What to do after each probe of a peer: a pure decision, with the time and randomness injected.
//
// The schedule is built for detection lag. Tokens reach most replicas within ~100 ms, so the
// first retries come every delayMs: a token that lands is seen at most that long after. From
// then on a delay is (backoff − 1) × the time already waited, i.e. it grows by `backoff` per
// retry: a replica that needs a second costs ~20 probes rather than ~60, and the detection lag
// stays a fixed fraction of the replication lag. Retries stop when the next answer could not
// arrive before the deadline (minus a margin for a busy event loop), so a replica that never
// gets the token is reported `missing`, never mistaken for a slow one (`timeout`). A probe that
// got no answer at all (it timed out) is retried until the deadline: a peer that never answers
// is the slow one, and `timeout` is the truth about it; one that answered before keeps that
// answer if the deadline comes first (verdict.ts unresolvedOutcome).
import type { Config } from '../config.js';
import type { PeerOutcome, ProbeResultKind } from '../model.js';

export type RetrySettings = Config['retry'];

export type PeerStep =
  | { readonly kind: 'resolve'; readonly outcome: PeerOutcome }
  | { readonly kind: 'retry'; readonly delayMs: number };

/** Room kept between the last possible probe answer and the deadline, for event-loop delay. */
export const DEADLINE_MARGIN_MS = 100;

/**
 * Delay before the next probe when `elapsedMs` have passed since the first one:
 * max(delayMs, (backoff − 1) × elapsedMs), capped at maxDelayMs, then spread by ±jitter so the
 * sidecars of replicas that saw the same token at once do not retry in lockstep.
 */
export function retryDelay(elapsedMs: number, s: RetrySettings, random: () => number): number {
  const base = Math.min(s.maxDelayMs, Math.max(s.delayMs, (s.backoff - 1) * elapsedMs));
  return Math.max(0, base * (1 + s.jitter * (2 * random() - 1)));
}

/**
 * The last moment after a check's start at which a retry may still be sent: its answer (or its
 * probe timeout) then comes DEADLINE_MARGIN_MS before the hard deadline at the latest.
 */
export function retryWindowMs(hardTimeoutMs: number, probeTimeoutMs: number): number {
  return hardTimeoutMs - probeTimeoutMs - DEADLINE_MARGIN_MS;
}

/**
 * After `attempts` probes, the last of which ended as `result` at `elapsedMs` into the check
 * (`timedOut`: without any answer): resolve the peer, or retry after a delay — for an answer,
 * only if that retry starts within `windowMs`.
 */
export function nextStep(
  result: ProbeResultKind,
  attempts: number,
  elapsedMs: number,
  s: RetrySettings,
  windowMs: number,
  random: () => number,
  timedOut = false,
): PeerStep {
  switch (result) {
    case 'synced':
      return { kind: 'resolve', outcome: 'synced' };
    case 'departed':
      return { kind: 'resolve', outcome: 'departed' };
    case 'unexpected':
      // A 403, a 404 or a certificate that does not verify will not change by retrying: a
      // misconfiguration, reported at once.
      return { kind: 'resolve', outcome: 'error' };
    case 'missing':
    case 'error': {
      if (attempts > s.maxRetries) return { kind: 'resolve', outcome: result };
      const delayMs = retryDelay(elapsedMs, s, random);
      return !timedOut && elapsedMs + delayMs > windowMs ? { kind: 'resolve', outcome: result } : { kind: 'retry', delayMs };
    }
  }
}

/**
 * When a peer that keeps answering at once (no jitter) gets its probes: 0 ms, then after each
 * retry. What an operator reads to see how much lag a configuration covers, and at what cost.
 */
export function probeTimes(s: RetrySettings, windowMs: number): number[] {
  const times = [0];
  for (let attempts = 1; ; attempts++) {
    const elapsed = times[times.length - 1]!;
    const step = nextStep('missing', attempts, elapsed, { ...s, jitter: 0 }, windowMs, () => 0.5);
    if (step.kind === 'resolve') return times;
    times.push(elapsed + step.delayMs);
  }
}
