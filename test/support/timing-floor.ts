// Timing bounds that a loaded machine does not break: a bound is the target (a deadline, a lag)
// plus the stated allowance plus floors measured in the same run, so load that slows the run
// raises the bound with it. Two floors: how far the event loop of the process that keeps the
// deadline fell behind while the measured requests ran (node's own event-loop delay monitor: a
// deadline timer is late by as much, and the machine's load shows in it) — this process's, or a
// sidecar process's as it exports it —, and the round trip of a request that needs no waiting
// (the hop), measured by the caller.
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Sampling period of the delay monitor; each sample is this period plus the delay. */
const RESOLUTION_MS = 5;

/** Runs `action` while sampling the event loop: its result, and the worst delay seen meanwhile (ms). */
export async function withLoopDelay<T>(action: () => Promise<T>): Promise<{ result: T; lateMs: number }> {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  try {
    const result = await action();
    histogram.disable();
    return { result, lateMs: Math.max(0, histogram.max / 1e6 - RESOLUTION_MS) };
  } finally {
    histogram.disable();
  }
}

/**
 * A sidecar process's worst event-loop delay (ms) since /metrics was last rendered: prom-client
 * resets nodejs_eventloop_lag_max_seconds at each render, so read once before the measured
 * requests (that reset is the start) and once after (renders are at least 100 ms apart).
 */
export async function sidecarLoopDelayMs(opsUrl: string): Promise<number> {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  const seconds = Number(/^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text)?.[1]);
  if (!Number.isFinite(seconds)) throw new Error('no nodejs_eventloop_lag_max_seconds in the sidecar\'s /metrics');
  return seconds * 1000;
}

/** target + allowance + floors, and how it was made (for the assertion's message). */
export function boundOf(targetMs: number, allowanceMs: number, floors: { readonly lateMs: number; readonly hopMs: number }): { ms: number; why: string } {
  const ms = targetMs + allowanceMs + floors.lateMs + floors.hopMs;
  return { ms, why: `${ms.toFixed(0)} ms = ${targetMs.toFixed(0)} + ${allowanceMs} allowance + ${floors.lateMs.toFixed(0)} loop delay + ${floors.hopMs.toFixed(0)} hop, measured in this run` };
}
