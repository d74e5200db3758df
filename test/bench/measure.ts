// What the bench measures with: closed-loop load, sequential latency, percentiles, and a
// process's CPU and peak memory read from /proc (so the sidecar is measured on its own process,
// never on the load generator's).
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface Saturation {
  /** Operations completed in the measured window. */
  readonly count: number;
  readonly perSecond: number;
}

export interface Latency {
  readonly p50: number;
  readonly p99: number;
  readonly count: number;
}

/** The q-quantile (0..1) of sorted samples. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** The median of unsorted figures (left unsorted). */
export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

export function latencyOf(samples: number[]): Latency {
  samples.sort((a, b) => a - b);
  return { p50: quantile(samples, 0.5), p99: quantile(samples, 0.99), count: samples.length };
}

/**
 * Runs `op` from `concurrency` loops: a warm-up of `warmupMs`, then a measured window of
 * `seconds`, bracketed by `onWindow` (start, end) so the caller can read CPU counters at its edges.
 */
export async function saturate(
  op: (i: number) => Promise<void>,
  concurrency: number,
  seconds: number,
  warmupMs: number,
  onWindow: { start(): void | Promise<void>; end(): void | Promise<void> },
): Promise<Saturation> {
  let seq = 0;
  let counting = false;
  let count = 0;
  const run = async (until: number): Promise<void> => {
    while (performance.now() < until) {
      await op(seq++);
      if (counting) count++;
    }
  };
  const loops = (until: number): Promise<void[]> => Promise.all(Array.from({ length: concurrency }, () => run(until)));
  await loops(performance.now() + warmupMs);
  await onWindow.start();
  counting = true;
  const started = performance.now();
  await loops(started + seconds * 1000);
  counting = false;
  const elapsed = (performance.now() - started) / 1000;
  await onWindow.end();
  return { count, perSecond: count / elapsed };
}

/**
 * Runs `op` at a fixed rate for `seconds` (open loop: each starts on schedule whatever the others
 * do), bracketed by `onWindow` around the whole window including the last answers. At the same
 * rate, two processes are compared on the same work: at saturation a 2-core machine also
 * measures who happens to be the bottleneck (a process that never sleeps is never woken up).
 */
export async function paced(
  op: (i: number) => Promise<void>,
  perSecond: number,
  seconds: number,
  warmupMs: number,
  onWindow: { start(): void | Promise<void>; end(): void | Promise<void> },
): Promise<Saturation> {
  const run = async (total: number, first: number): Promise<number> => {
    const running: Array<Promise<void>> = [];
    const started = performance.now();
    for (let i = 0; i < total; ) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * perSecond) + 1);
      for (; i < due; i++) running.push(op(first + i));
      if (i < total) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await Promise.all(running);
    return (performance.now() - started) / 1000;
  };
  const warmup = Math.round((perSecond * warmupMs) / 1000);
  await run(warmup, 0);
  const total = Math.max(1, Math.round(perSecond * seconds));
  await onWindow.start();
  const elapsed = await run(total, warmup);
  await onWindow.end();
  return { count: total, perSecond: total / elapsed };
}

/** Runs `op` one at a time for `seconds` (after `warmup` calls) and returns its latency. */
export async function sequential(op: (i: number) => Promise<void>, seconds: number, warmup = 20): Promise<Latency> {
  for (let i = 0; i < warmup; i++) await op(-1 - i);
  const samples: number[] = [];
  const until = performance.now() + seconds * 1000;
  for (let i = 0; performance.now() < until; i++) {
    const t0 = performance.now();
    await op(i);
    samples.push(performance.now() - t0);
  }
  return latencyOf(samples);
}

const TICKS_PER_SECOND = 100; // USER_HZ: /proc reports CPU in clock ticks of 10 ms on Linux

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Peak resident memory of a process so far, in MB (VmHWM). */
export function peakRssMbOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}
