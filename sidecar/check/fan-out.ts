// One check's fan-out: probe every target peer at once, retry per the policy, and settle no later
// than the hard deadline (or earlier, when ended because nobody waits for it any more), which also
// cuts whatever probes are still waiting or in flight. It takes what it needs and returns a
// result; it reports nothing to anyone on the way.
import type { FanOutResult, Misconfigured, PeerOutcome, PeerReport, ProbeResultKind, ProbeTally } from '../model.js';
import type { PeerChannel } from '../probe/peer-channel.js';
import { CUT, PROBE_TIMEOUT, type Probe, type ProbeListener, type ProbeResult } from '../probe/probe.js';
import { nextStep, type PeerStep, type RetrySettings } from './retry-policy.js';
import { unresolvedOutcome, verdictOf, type Answer } from './verdict.js';
import { reportUnexpected } from '../unexpected.js';

export interface FanOutSettings {
  readonly hardTimeoutMs: number;
  readonly retry: RetrySettings;
  /** The last moment into a check at which a retry may start (retry-policy.ts retryWindowMs). */
  readonly retryWindowMs: number;
}

export interface FanOutDeps {
  readonly now: () => number;
  readonly random: () => number;
}

/** A fan-out under way. */
export interface RunningFanOut {
  /** Rejects only on a bug (an exception in this check's own decisions), never because of anything a peer does. */
  readonly result: Promise<FanOutResult>;
  /** Ends it now, as its deadline would: nobody waits for its verdict any more. */
  end(): void;
}

/** Probes `targets` with `headers` ([name, value] carrying the token). */
export function fanOut(targets: readonly PeerChannel[], headers: string[], settings: FanOutSettings, deps: FanOutDeps): RunningFanOut {
  const check = new FanOut(targets, headers, settings, deps);
  check.start();
  return check;
}

const NONE: readonly Misconfigured[] = Object.freeze([]);

function retryRun(run: PeerRun): void {
  run.retry();
}

/**
 * The deadline timer fired: end the check in this turn's check phase, after its poll phase. When
 * the loop ran late, answers that reached the sockets by the deadline are read first and count.
 */
function deadlinePassed(check: FanOut): void {
  setImmediate(check.end);
}

/**
 * Cuts probes a finished check no longer waits for, after the answer is out: aborting a probe on
 * a socket destroys that socket, which costs more than answering. When many checks reach their
 * deadline together on a busy event loop, answering first keeps every answer within its deadline.
 */
function cutLater(probes: readonly Probe[]): void {
  if (probes.length > 0) setImmediate(cutAll, probes);
}

function cutAll(probes: readonly Probe[]): void {
  for (const probe of probes) {
    // One that throws must not leave the others on their sockets.
    try {
      probe.cut(CUT.deadline);
    } catch (err) {
      reportUnexpected('timer', 'cutting the probes of a finished check', err);
    }
  }
}

/** One peer within a check: its attempts, its probe in flight or its wait before the next one. */
class PeerRun implements ProbeListener {
  outcome: PeerOutcome = 'timeout'; // set when it resolves, or when the check ends first
  attempts = 0;
  lastStatus: number | null = null;
  lastError: string | null = null;
  syncedAtMs: number | null = null;
  done = false;
  /** What the peer's last answer said (a probe cut by the probe timeout is no answer). */
  private lastAnswer: Answer | undefined;
  private probe: Probe | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly channel: PeerChannel,
    private readonly check: FanOut,
  ) {}

  /** The retry timer fired (retryRun below, shared by all runs: no closure per peer and check). */
  retry(): void {
    this.retryTimer = undefined;
    try {
      this.send();
    } catch (err) {
      this.check.fail(err);
    }
  }

  send(): void {
    if (this.done) return;
    if (this.channel.departed) return this.resolve('departed');
    this.attempts++;
    const probe = this.channel.probe(this.check.headers, this);
    // A probe may settle inside probe() (a refused pool answers at once): then it is not in flight.
    if (!probe.isSettled) this.probe = probe;
  }

  probeSettled(_probe: Probe, result: ProbeResult): void {
    // The run's one probe in flight, if any, is this one: the next is sent only after it settles.
    this.probe = undefined;
    // After the deadline the check has counted this probe as aborted already.
    if (this.done) return;
    this.check.tally[result.kind]++;
    if (result.kind === 'aborted') return;
    // Called from undici's callbacks: an exception here must fail this check, not undici's request.
    try {
      // The last status the peer sent stays, beside why a later attempt got none.
      if (result.status !== null) this.lastStatus = result.status;
      this.lastError = result.errorCode;
      const timedOut = result.errorCode === PROBE_TIMEOUT;
      if ((result.kind === 'missing' || result.kind === 'error') && !timedOut) this.lastAnswer = result.kind;
      const step = this.check.nextStep(result.kind, timedOut, this.attempts);
      if (result.kind === 'unexpected') this.check.misconfigured(this.channel, result);
      // Retries that run out on a probe timeout end on no answer: the rule of the check's end holds.
      if (step.kind === 'resolve') this.resolve(timedOut ? unresolvedOutcome(false, this.lastAnswer) : step.outcome);
      else this.retryTimer = setTimeout(retryRun, step.delayMs, this);
    } catch (err) {
      this.check.fail(err);
    }
  }

  /**
   * The check ended first: end the wait, and hand back the probe still in flight (the caller
   * counts it aborted and cuts it once the answer is out). The outcome is the rule's
   * (verdict.ts unresolvedOutcome): departed, else the last answer, else timeout.
   */
  stop(): Probe | undefined {
    if (this.done) return undefined;
    this.done = true;
    this.outcome = unresolvedOutcome(this.channel.departed, this.lastAnswer);
    clearTimeout(this.retryTimer);
    const probe = this.probe;
    this.probe = undefined;
    return probe;
  }

  report(): PeerReport {
    return {
      name: this.channel.peer.name,
      outcome: this.outcome,
      attempts: this.attempts,
      lastStatus: this.lastStatus,
      lastError: this.lastError,
      syncedAtMs: this.syncedAtMs,
    };
  }

  private resolve(outcome: PeerOutcome): void {
    // The per-peer replication figure (telemetry) and the canary's arrival time.
    if (outcome === 'synced') this.syncedAtMs = this.check.elapsedMs();
    this.done = true;
    this.outcome = outcome;
    this.check.peerResolved();
  }
}

class FanOut implements RunningFanOut {
  readonly result: Promise<FanOutResult>;
  readonly tally: ProbeTally = { synced: 0, missing: 0, error: 0, unexpected: 0, departed: 0, aborted: 0 };
  private misconfiguredPeers: Misconfigured[] | undefined;
  private readonly runs: PeerRun[];
  /** Probes the check stopped waiting for: counted aborted, cut once the answer is out. */
  private readonly stopped: Probe[] = [];
  private readonly started: number;
  private pending: number;
  private settled = false;
  private deadline: NodeJS.Timeout | undefined;
  private resolve!: (result: FanOutResult) => void;
  private reject!: (err: unknown) => void;

  constructor(
    targets: readonly PeerChannel[],
    readonly headers: string[],
    private readonly settings: FanOutSettings,
    private readonly deps: FanOutDeps,
  ) {
    this.result = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.started = deps.now();
    this.runs = targets.map((channel) => new PeerRun(channel, this));
    this.pending = this.runs.length;
  }

  start(): void {
    try {
      if (this.pending === 0) return this.finish();
      this.deadline = setTimeout(deadlinePassed, this.settings.hardTimeoutMs, this);
      for (const run of this.runs) run.send();
    } catch (err) {
      this.fail(err);
    }
  }

  elapsedMs(): number {
    return this.deps.now() - this.started;
  }

  nextStep(kind: ProbeResultKind, timedOut: boolean, attempts: number): PeerStep {
    const { retry, retryWindowMs } = this.settings;
    return nextStep(kind, attempts, this.deps.now() - this.started, retry, retryWindowMs, this.deps.random, timedOut);
  }

  misconfigured(channel: PeerChannel, result: ProbeResult): void {
    (this.misconfiguredPeers ??= []).push({ peer: channel.peer, status: result.status, errorCode: result.errorCode });
  }

  peerResolved(): void {
    if (--this.pending === 0) this.finish();
  }

  /** An exception in one of this check's own steps: this check fails (a 500), nothing else does. */
  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.deadline);
    // finish() may have stopped the runs already, before it threw: its probes are cut here.
    this.stopRuns();
    this.reject(err);
    cutLater(this.stopped);
  }

  /** Stops every run; the probes still in flight join `stopped`. */
  private stopRuns(): void {
    for (const run of this.runs) {
      const probe = run.stop();
      if (probe === undefined) continue;
      this.stopped.push(probe);
      this.tally.aborted++;
    }
  }

  /** The deadline (its timer), or nobody waits any more: settle now with what is known. */
  readonly end = (): void => {
    try {
      this.finish();
    } catch (err) {
      this.fail(err);
    }
  };

  private finish(): void {
    if (this.settled) return;
    this.stopRuns();
    const peers: PeerReport[] = [];
    const outcomes: PeerOutcome[] = [];
    let firstSyncedMs: number | null = null;
    for (const run of this.runs) {
      const report = run.report();
      peers.push(report);
      outcomes.push(report.outcome);
      if (report.syncedAtMs !== null && (firstSyncedMs === null || report.syncedAtMs < firstSyncedMs)) firstSyncedMs = report.syncedAtMs;
    }
    const result: FanOutResult = {
      verdict: verdictOf(outcomes),
      durationMs: this.deps.now() - this.started,
      peers,
      probes: this.tally,
      misconfigured: this.misconfiguredPeers ?? NONE,
      firstSyncedAt: firstSyncedMs === null ? null : this.started + firstSyncedMs,
    };
    // Settled only once the result exists: if building it threw, fail() still answers the check.
    this.settled = true;
    clearTimeout(this.deadline);
    this.resolve(result);
    cutLater(this.stopped);
  }
}
