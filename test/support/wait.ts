// Waiting in tests: a condition polled every `intervalMs`, bounded by a deadline. The one
// polling loop of the test harnesses (event-driven waits, such as waitForSet, are separate).

export interface WaitOptions {
  /** Deadline from the first poll (default 5 000 ms). */
  readonly timeoutMs?: number;
  /** Pause between polls (default 10 ms). */
  readonly intervalMs?: number;
  /**
   * Checked before every poll: an Error returned here is thrown at once (e.g. the process being
   * waited for has exited, so the condition can never become true).
   */
  readonly abortIf?: () => Error | undefined;
  /**
   * By default an error thrown by the condition ends the wait with that error. With
   * retryOnError, it counts as "not yet" (a server still starting refuses connections) and
   * the last one is named in the timeout error.
   */
  readonly retryOnError?: boolean;
  /** What to add to the error if the wait fails (a process's output, say); read only then. */
  readonly context?: () => string;
}

/** The deadline of a wait passed (callers add what they know about why). */
export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
}

/**
 * Polls `fn` until it returns a value other than undefined/false and resolves with that value
 * (`true` for a plain condition). Throws a WaitTimeout after `timeoutMs`, naming `what`.
 */
export async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, opts: WaitOptions = {}): Promise<T> {
  const { context } = opts;
  if (context === undefined) return poll(fn, what, opts);
  try {
    return await poll(fn, what, opts);
  } catch (err) {
    const message = `${err instanceof Error ? err.message : String(err)}\n${context()}`;
    throw err instanceof WaitTimeout ? new WaitTimeout(message) : new Error(message, { cause: err });
  }
}

async function poll<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, opts: WaitOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const intervalMs = opts.intervalMs ?? 10;
  // The monotonic clock: the wall clock of a VM can step (seen: ~4 s on a loaded machine), which
  // would end a wait early or late.
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const abort = opts.abortIf?.();
    if (abort) throw abort;
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      if (opts.retryOnError !== true) throw err;
      lastError = err;
    }
    if (performance.now() > deadline) {
      const why = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new WaitTimeout(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A deadline shared by several waits in a row: each gets what is left of it. */
export function deadline(totalMs: number): { remainingMs(): number } {
  const end = performance.now() + totalMs;
  return { remainingMs: () => Math.max(0, end - performance.now()) };
}

/** Resolves after `ms` (for the few tests that must let time pass, not wait for a condition). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
