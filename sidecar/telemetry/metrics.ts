// Prometheus metrics, on a registry of our own so tests can run several instances in one process.
// An observer: app.ts subscribes it to the store, the checker and the check API, which never
// import it. Labels are closed sets (verdicts, outcomes, states, reasons), plus the peer's name on
// the per-peer series (peer-metrics.ts, bounded per peer): no token, origin or peer address ever
// becomes a label. Label handles are bound once, not looked up per check.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CheckerObserver } from '../check/checker.js';
import type { PeerStoreObserver } from '../discovery/peer-store.js';
import type { ApiObserver } from '../http/api-server.js';
import type { CanaryReport, CanaryRunResult, CheckAnswered, DiscoveryState, FanOutResult, PeerSet, PeerSetDiff, ProbeTally, RejectReason, Verdict } from '../model.js';
import { UNEXPECTED_SOURCES, type UnexpectedSource } from '../unexpected.js';
import { PeerMetrics } from './peer-metrics.js';

const DISCOVERY_STATES: readonly DiscoveryState[] = ['pending', 'synced', 'stale'];
const PROBE_RESULTS: ReadonlyArray<keyof ProbeTally> = ['synced', 'missing', 'error', 'unexpected', 'departed', 'aborted'];
const CANARY_RUN_RESULTS: readonly CanaryRunResult[] = ['synced', 'incomplete', 'write_failed'];

interface CheckHandles {
  readonly count: { inc(): void };
  readonly duration: { observe(value: number): void };
}

export class Telemetry implements PeerStoreObserver, CheckerObserver, Pick<ApiObserver, 'answered' | 'rejected'> {
  readonly registry = new Registry();
  private readonly byVerdict: Readonly<Record<Verdict, CheckHandles>>;
  private readonly checksShared: Counter;
  private readonly checksCached: Counter;
  private readonly checksRejected: Counter<'reason'>;
  private readonly probes: Readonly<Record<keyof ProbeTally, { inc(n: number): void }>>;
  private readonly peers: Gauge;
  private readonly peerChanges: Counter<'change'>;
  private readonly discovery: Gauge<'state'>;
  private readonly discoveryErrors: Counter<'kind'>;
  private readonly perPeer: PeerMetrics;
  private canaryRuns: Counter<'result'> | undefined;
  private canaryLastRun: Gauge | undefined;
  private self: { readonly name: string; readonly ip: string | undefined } = { name: '', ip: undefined };
  private readonly unexpectedErrors: Counter<'source'>;

  constructor(options: { defaultMetrics: boolean } = { defaultMetrics: true }) {
    const registers = [this.registry];
    const checks = new Counter({ name: 'syncer_checks_total', help: 'Checks answered, by verdict.', labelNames: ['verdict'], registers });
    const checkDuration = new Histogram({
      name: 'syncer_check_duration_seconds',
      help: 'Time from a check request to its verdict.',
      labelNames: ['verdict'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    const handles = (v: Verdict): CheckHandles => ({ count: checks.labels(v), duration: checkDuration.labels(v) });
    this.byVerdict = { Synced: handles('Synced'), Partialy: handles('Partialy'), NotSynced: handles('NotSynced'), Timeout: handles('Timeout') };
    this.checksShared = new Counter({
      name: 'syncer_checks_shared_total',
      help: 'Checks answered by joining an identical check already in flight (no extra probes).',
      registers,
    });
    this.checksCached = new Counter({
      name: 'syncer_checks_cached_total',
      help: 'Checks answered Synced from the memo of recent Synced verdicts (no probes).',
      registers,
    });
    this.checksRejected = new Counter({
      name: 'syncer_checks_rejected_total',
      help: 'Check requests answered without a verdict, by reason.',
      labelNames: ['reason'],
      registers,
    });
    const probes = new Counter({ name: 'syncer_probes_total', help: 'Probes sent to peers, by result.', labelNames: ['result'], registers });
    const byResult = (r: keyof ProbeTally): { inc(n: number): void } => probes.labels(r);
    this.probes = {
      synced: byResult('synced'),
      missing: byResult('missing'),
      error: byResult('error'),
      unexpected: byResult('unexpected'),
      departed: byResult('departed'),
      aborted: byResult('aborted'),
    };
    this.peers = new Gauge({ name: 'syncer_peers', help: 'Peers in the current peer set.', registers });
    this.peerChanges = new Counter({
      name: 'syncer_peer_set_changes_total',
      help: 'Peers added to or removed from the peer set.',
      labelNames: ['change'],
      registers,
    });
    this.discovery = new Gauge({
      name: 'syncer_discovery_state',
      help: 'Discovery state: 1 for the current one of pending, synced, stale.',
      labelNames: ['state'],
      registers,
    });
    this.discoveryErrors = new Counter({
      name: 'syncer_discovery_errors_total',
      help: 'Discovery failures (list, watch, resolve), by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.perPeer = new PeerMetrics(this.registry);
    this.unexpectedErrors = new Counter({
      name: 'syncer_unexpected_errors_total',
      help: 'Exceptions caught at an entry point that is not a request (a bug, contained), by source: timer, event, promise.',
      labelNames: ['source'],
      registers,
    });
    // Every source from 0, so that a rate or an alert has a series before the first error.
    for (const source of UNEXPECTED_SOURCES) this.unexpectedErrors.inc({ source }, 0);
    this.stateChanged('pending');
    // prom-client's defaults include the event-loop delay (nodejs_eventloop_lag_*, from
    // monitorEventLoopDelay): what eats the margin between retries and the deadline.
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** syncer_checks_in_flight, read from `read` at each scrape instead of counted per check. */
  countInFlight(read: () => number): void {
    new Gauge({
      name: 'syncer_checks_in_flight',
      help: 'Check requests waiting for their verdict.',
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** The pod this sidecar runs in (POD_NAME, POD_IP): no per-peer series for it. */
  ownPod(pod: { readonly name: string; readonly ip: string | undefined }): void {
    this.self = pod;
  }

  /** syncer_memory_limit_bytes: the container's memory limit (telemetry/memory-limit.ts); absent when unlimited. */
  memoryLimit(bytes: number | undefined): void {
    if (bytes === undefined) return;
    new Gauge({ name: 'syncer_memory_limit_bytes', help: "The container's memory limit (cgroup), read at start.", registers: [this.registry] }).set(bytes);
  }

  // ---- the check API and the checker ---------------------------------------------------------

  answered(e: CheckAnswered): void {
    const h = this.byVerdict[e.result.verdict];
    h.count.inc();
    h.duration.observe(e.durationMs / 1000);
    if (e.shared) this.checksShared.inc();
    if (e.cached) this.checksCached.inc();
  }

  rejected(reason: RejectReason): void {
    this.checksRejected.inc({ reason });
  }

  fanOutDone(result: FanOutResult): void {
    for (const kind of PROBE_RESULTS) {
      const n = result.probes[kind];
      if (n > 0) this.probes[kind].inc(n);
    }
    this.perPeer.checked(result);
  }

  // ---- the canary ----------------------------------------------------------------------------

  /** The canary is on: its series exist (the last-run time appears with the first run). */
  canaryOn(): void {
    this.canaryRuns = new Counter({
      name: 'syncer_canary_runs_total',
      help: "Canary runs, by result: synced (every peer got the key), incomplete (some did not), write_failed (the own replica's token API did not take it).",
      labelNames: ['result'],
      registers: [this.registry],
    });
    for (const result of CANARY_RUN_RESULTS) this.canaryRuns.inc({ result }, 0);
    this.perPeer.enableCanary();
  }

  canaryDone(report: CanaryReport): void {
    this.canaryRuns?.inc({ result: report.result });
    this.canaryLastRun ??= new Gauge({
      name: 'syncer_canary_last_run_timestamp_seconds',
      help: 'Unix time at which the last canary run ended (any result).',
      registers: [this.registry],
    });
    this.canaryLastRun.set(report.endedAt / 1000);
    this.perPeer.canaryRan(report);
  }

  // ---- discovery (the peer store) ------------------------------------------------------------

  changed(set: PeerSet, diff: PeerSetDiff): void {
    this.peers.set(set.peers.length);
    this.perPeer.peersChanged(set.peers, this.self);
    if (diff.added.length > 0) this.peerChanges.inc({ change: 'added' }, diff.added.length);
    if (diff.removed.length > 0) this.peerChanges.inc({ change: 'removed' }, diff.removed.length);
  }

  stateChanged(state: DiscoveryState): void {
    for (const s of DISCOVERY_STATES) this.discovery.set({ state: s }, s === state ? 1 : 0);
  }

  failed(kind: string): void {
    this.discoveryErrors.inc({ kind });
  }

  // ---- errors nobody expected (unexpected.ts) ---------------------------------------------------

  unexpected(source: UnexpectedSource): void {
    this.unexpectedErrors.inc({ source });
  }

  // ---------------------------------------------------------------------------------------------

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
