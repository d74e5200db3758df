// One check's fan-out: probe every target peer at once, retry per the policy, and answer no later
// than the hard deadline, which also aborts whatever probes are still in flight.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import type { Peer } from '../discovery/peer-set.js';
import type { PeerPools } from '../probe/peer-pools.js';
import { probe, type ProbeResult } from '../probe/prober.js';
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

const DEADLINE = new Error('check deadline');

type MutableReport = { -readonly [K in keyof PeerReport]: PeerReport[K] };

export function fanOut(targets: readonly Peer[], token: string, ctx: FanOutContext): Promise<CheckResult> {
  const started = ctx.now();
  // Until a peer resolves, its outcome is what it would be at the deadline.
  const reports: MutableReport[] = targets.map((p) => ({ name: p.name, outcome: 'timeout', attempts: 0, lastStatus: null, lastError: null }));
  if (targets.length === 0) return Promise.resolve(snapshot(reports, started, ctx));

  const { probe: probeConfig } = ctx.config;
  const headers = { [probeConfig.header]: probeConfig.headerPrefix + token };
  const controller = new AbortController();
  return new Promise((resolve) => {
    let pending = targets.length;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      // Only a deadline leaves probes in flight; aborting costs an exception object, so skip it otherwise.
      if (pending > 0) controller.abort(DEADLINE);
      resolve(snapshot(reports, started, ctx));
    };
    const deadline = setTimeout(finish, ctx.config.hardTimeoutMs);
    targets.forEach((peer, i) => {
      void probeUntilResolved(peer, reports[i]!, headers, controller.signal, ctx).then(() => {
        if (--pending === 0) finish();
      });
    });
  });
}

async function probeUntilResolved(
  peer: Peer,
  report: MutableReport,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
  ctx: FanOutContext,
): Promise<void> {
  const pool = ctx.pools.get(peer);
  const { path, timeoutMs } = ctx.config.probe;
  for (;;) {
    report.attempts++;
    const result: ProbeResult = await probe(pool, path, headers, signal, timeoutMs);
    ctx.telemetry.probeDone(result.kind);
    if (result.kind === 'aborted') return;
    report.lastStatus = result.status;
    report.lastError = result.errorCode;
    const step = nextStep(result.kind, report.attempts, ctx.config.retry, ctx.random);
    if (step.kind === 'resolve') {
      report.outcome = step.outcome;
      if (result.kind === 'unexpected' && result.status !== null) ctx.onUnexpected(peer, result.status);
      return;
    }
    try {
      await sleep(step.delayMs, undefined, { signal });
    } catch {
      return; // the deadline passed while waiting: the peer stays 'timeout'
    }
  }
}

function snapshot(reports: readonly MutableReport[], started: number, ctx: FanOutContext): CheckResult {
  const peers = reports.map((r) => ({ ...r }));
  return { verdict: verdictOf(peers.map((p) => p.outcome)), durationMs: ctx.now() - started, peers };
}
