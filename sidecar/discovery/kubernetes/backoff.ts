// Capped exponential backoff with equal jitter, and the wait it schedules: every replica's
// sidecar retries the API server after an outage, and jitter keeps them from arriving in
// lockstep. Equal jitter (half fixed, half random) rather than full jitter keeps a floor under
// each delay, so a fast-failing endpoint is never retried in a tight loop
// (kubernetes-client/javascript#1933).
import type { Clock } from '../clock.js';

export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
}

/** For list/watch against the API server: 250 ms, 500 ms, 1 s … capped at 10 s. */
export const API_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 10_000, factor: 2 };

/** Delay before retry number `attempt` (0-based); `random` returns [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.min(attempt, 64));
  const half = ceiling / 2;
  return Math.round(half + random() * half);
}

/** Counts consecutive failures; a success resets the schedule. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number,
  ) {}

  next(): number {
    return backoffDelay(this.attempt++, this.policy, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}

/** Resolves after `ms`, or as soon as `signal` aborts (never rejects: the caller checks why it woke). */
export function pause(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = clock.setTimeout(done, ms);
    signal.addEventListener('abort', done);
    function done(): void {
      timer.cancel();
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
