// One check's fan-out: probe every target peer at once, retry per the policy, and answer no later
// than the hard deadline, which also aborts whatever probes are still in flight.
import type { Config } from '../config.js';
import type { Peer } from '../discovery/peer-set.js';
import type { PeerPools } from '../probe/peer-pools.js';
import { DEADLINE, probe, type ProbeResult } from '../probe/prober.js';
import type { Telemetry } from '../telemetry/metrics.js';
import { nextStep } from './retry-policy.js';
import { verdictOf, type PeerOutcome, type Verdict } from './verdict.js';

export interface PeerReport {
  readonly name: string;
  readonly outcome: PeerOutcome;
  readonly attempts: number;
  readonly lastStatus: number | null;
  /** Why the last attempt failed without a status (ECONNREFUSED, …); null otherwise. */
  readonly lastError: string | null;
}

export interface CheckResult {
  readonly verdict: Verdict;
  readonly durationMs: number;
  readonly peers: readonly PeerReport[];
}

export interface FanOutContext {
  readonly config: Config;
  readonly pools: PeerPools;
  readonly telemetry: Telemetry;
  readonly now: () => number;
  readonly random: () => number;
  /** Told of statuses that stop retrying (403, 404, …): they mean misconfiguration. */
  readonly onUnexpected: (peer: Peer, status: number) => void;
}

type MutableReport = { -readonly [K in keyof PeerReport]: PeerReport[K] };

/**
 * What the deadline must be able to cut short for one peer: its probe in flight, or its wait
 * before the next retry. Held per peer rather than as listeners on one shared signal, so the
 * common case (every peer answers) registers nothing and creates no exception objects.
 */
interface PeerRun {
  done: boolean;
  attempt: AbortController | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  wake: (() => void) | undefined;
}

export function fanOut(targets: readonly Peer[], token: string, ctx: FanOutContext): Promise<CheckResult> {
  const started = ctx.now();
  // Until a peer resolves, its outcome is what it would be at the deadline.
  const reports: MutableReport[] = targets.map((p) => ({ name: p.name, outcome: 'timeout', attempts: 0, lastStatus: null, lastError: null }));
  if (targets.length === 0) return Promise.resolve(snapshot(reports, started, ctx));

  const { probe: probeConfig } = ctx.config;
  const headers = { [probeConfig.header]: probeConfig.headerPrefix + token };
  const runs: PeerRun[] = targets.map(() => ({ done: false, attempt: undefined, retryTimer: undefined, wake: undefined }));
  return new Promise((resolve) => {
    let pending = targets.length;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      for (const run of runs) cutShort(run);
      resolve(snapshot(reports, started, ctx));
    };
    const deadline = setTimeout(finish, ctx.config.hardTimeoutMs);
    targets.forEach((peer, i) => {
      void probeUntilResolved(peer, reports[i]!, headers, runs[i]!, ctx).then(() => {
        if (--pending === 0) finish();
      });
    });
  });
}

/** The deadline passed: abort the peer's probe or end its wait; it stays 'timeout'. */
function cutShort(run: PeerRun): void {
  if (run.done) return;
  run.done = true;
  run.attempt?.abort(DEADLINE);
  clearTimeout(run.retryTimer);
  run.wake?.();
}

async function probeUntilResolved(
  peer: Peer,
  report: MutableReport,
  headers: Readonly<Record<string, string>>,
  run: PeerRun,
  ctx: FanOutContext,
): Promise<void> {
  const pool = ctx.pools.get(peer);
  const { path, timeoutMs } = ctx.config.probe;
  while (!run.done) {
    report.attempts++;
    run.attempt = new AbortController();
    const result: ProbeResult = await probe(pool, path, headers, run.attempt, timeoutMs);
    run.attempt = undefined;
    ctx.telemetry.probeDone(result.kind);
    if (result.kind === 'aborted') return;
    report.lastStatus = result.status;
    report.lastError = result.errorCode;
    const step = nextStep(result.kind, report.attempts, ctx.config.retry, ctx.random);
    if (step.kind === 'resolve') {
      run.done = true;
      report.outcome = step.outcome;
      if (result.kind === 'unexpected' && result.status !== null) ctx.onUnexpected(peer, result.status);
      return;
    }
    await new Promise<void>((resolve) => {
      run.wake = resolve;
      run.retryTimer = setTimeout(resolve, step.delayMs);
    });
    run.wake = undefined;
    run.retryTimer = undefined;
  }
}

function snapshot(reports: readonly MutableReport[], started: number, ctx: FanOutContext): CheckResult {
  const peers = reports.map((r) => ({ ...r }));
  return { verdict: verdictOf(peers.map((p) => p.outcome)), durationMs: ctx.now() - started, peers };
}
