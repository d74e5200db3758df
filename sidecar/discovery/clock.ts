// Time as a dependency of discovery: the reflector's watchdog, backoff sleeps, resync timer and
// the DNS interval read it, so tests can drive them without waiting.

export interface Clock {
  /** Milliseconds on a monotonic clock: for durations only (a wall clock can step). */
  now(): number;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * Runs `work` with a signal that aborts when `signal` does, or with `reason()` once `ms` passed
 * on `clock`: one bound for a request in every phase (connect, headers, body). The timer ends
 * with the work.
 */
export async function withDeadline<T>(clock: Clock, ms: number, signal: AbortSignal, reason: () => Error, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = new AbortController();
  const timer = clock.setTimeout(() => deadline.abort(reason()), ms);
  try {
    return await work(AbortSignal.any([signal, deadline.signal]));
  } finally {
    timer.cancel();
  }
}
