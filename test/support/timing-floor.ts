// Timing bounds that a loaded machine does not break: a bound is the target (a deadline, a lag)
// plus the stated allowance plus a floor measured in the same run, so load that slows the run
// raises the bound with it. Two floors: how late a timer fires in this process while the
// measured request runs (the event loop's and the machine's delay over that very window), and
// the round trip of a request that needs no waiting (the hop), measured by the caller.
import { performance } from 'node:perf_hooks';

/** Runs `action` beside a timer due `dueMs` after it starts: the action's result, and how many ms late the timer fired. */
export async function besideTimer<T>(dueMs: number, action: () => Promise<T>): Promise<{ result: T; lateMs: number }> {
  const started = performance.now();
  const late = new Promise<number>((resolve) => setTimeout(() => resolve(Math.max(0, performance.now() - started - dueMs)), dueMs));
  const [result, lateMs] = await Promise.all([action(), late]);
  return { result, lateMs };
}

/** target + allowance + floors, and how it was made (for the assertion's message). */
export function boundOf(targetMs: number, allowanceMs: number, floors: { readonly lateMs: number; readonly hopMs: number }): { ms: number; why: string } {
  const ms = targetMs + allowanceMs + floors.lateMs + floors.hopMs;
  return { ms, why: `${ms.toFixed(0)} ms = ${targetMs} + ${allowanceMs} allowance + ${floors.lateMs.toFixed(0)} timer lateness + ${floors.hopMs.toFixed(0)} hop, measured in this run` };
}
