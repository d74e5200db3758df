// What keeps this process's event loop alive, by kind: sockets, listeners, connects in progress
// and timers (process.getActiveResourcesInfo()). Fault and soak tests of the in-process sidecar
// count them before and after a batch: a socket, listener or timer a check left behind shows here.
import { waitFor } from './wait.js';

export interface HandleCounts {
  readonly sockets: number;
  readonly listeners: number;
  readonly connects: number;
  readonly timers: number;
}

export function handleCounts(): HandleCounts {
  const counts = { sockets: 0, listeners: 0, connects: 0, timers: 0 };
  for (const r of process.getActiveResourcesInfo()) {
    if (r === 'TCPSocketWrap') counts.sockets++;
    else if (r === 'TCPServerWrap') counts.listeners++;
    else if (r === 'TCPConnectWrap') counts.connects++;
    else if (r === 'Timeout') counts.timers++;
  }
  return counts;
}

/** Each kind's excess over `baseline` (0 when at or below it). */
export function handleGrowth(baseline: HandleCounts, now: HandleCounts = handleCounts()): HandleCounts {
  const over = (k: keyof HandleCounts): number => Math.max(0, now[k] - baseline[k]);
  return { sockets: over('sockets'), listeners: over('listeners'), connects: over('connects'), timers: over('timers') };
}

/**
 * Waits (bounded) until no kind exceeds `baseline` by more than `slack` of it, and returns the
 * counts then, whether it got there or not: the caller asserts on them. Dropped connections
 * close asynchronously, so right after a batch some may still be closing.
 */
export async function settledHandles(baseline: HandleCounts, slack: Partial<HandleCounts> = {}, timeoutMs = 3_000): Promise<HandleCounts> {
  const within = (c: HandleCounts): boolean => {
    const g = handleGrowth(baseline, c);
    return (Object.keys(g) as Array<keyof HandleCounts>).every((k) => g[k] <= (slack[k] ?? 0));
  };
  let last = handleCounts();
  await waitFor(() => within((last = handleCounts())), 'the handles to be back to their count before the batch', { timeoutMs, intervalMs: 20 }).catch(() => undefined);
  return last;
}
