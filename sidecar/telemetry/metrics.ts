// Prometheus metrics, on a registry of our own so tests can run several instances in one process.
// Labels are closed sets (verdicts, outcomes, states): no token, origin or peer IP ever becomes a label.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DiscoveryState } from '../discovery/peer-store.js';
import type { PeerSetDiff } from '../discovery/peer-set.js';
import type { ProbeResultKind } from '../probe/prober.js';
import type { Verdict } from '../check/verdict.js';

const DISCOVERY_STATES: readonly DiscoveryState[] = ['pending', 'synced', 'stale'];

export class Telemetry {
  readonly registry = new Registry();
  private readonly checks: Counter<'verdict'>;
  private readonly checkDuration: Histogram<'verdict'>;
  private readonly checksShared: Counter;
  private readonly checksInFlight: Gauge;
  private readonly checksRejected: Counter<'reason'>;
  private readonly probes: Counter<'result'>;
  private readonly peers: Gauge;
  private readonly peerChanges: Counter<'change'>;
  private readonly discovery: Gauge<'state'>;
  private readonly discoveryErrors: Counter<'kind'>;

  constructor(options: { defaultMetrics: boolean } = { defaultMetrics: true }) {
    const registers = [this.registry];
    this.checks = new Counter({ name: 'syncer_checks_total', help: 'Checks answered, by verdict.', labelNames: ['verdict'], registers });
    this.checkDuration = new Histogram({
      name: 'syncer_check_duration_seconds',
      help: 'Time from a check request to its verdict.',
      labelNames: ['verdict'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.checksShared = new Counter({
      name: 'syncer_checks_shared_total',
      help: 'Checks answered by joining an identical check already in flight (no extra probes).',
      registers,
    });
    this.checksInFlight = new Gauge({ name: 'syncer_checks_in_flight', help: 'Check requests waiting for their verdict.', registers });
    this.checksRejected = new Counter({
      name: 'syncer_checks_rejected_total',
      help: 'Check requests refused before probing, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.probes = new Counter({ name: 'syncer_probes_total', help: 'Probes sent to peers, by result.', labelNames: ['result'], registers });
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
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  checkStarted(): void {
    this.checksInFlight.inc();
  }

  checkAnswered(verdict: Verdict, seconds: number, shared: boolean): void {
    this.checksInFlight.dec();
    this.checks.inc({ verdict });
    this.checkDuration.observe({ verdict }, seconds);
    if (shared) this.checksShared.inc();
  }

  checkRejected(reason: 'bad_token' | 'not_ready' | 'shutting_down'): void {
    this.checksRejected.inc({ reason });
  }

  probeDone(result: ProbeResultKind): void {
    this.probes.inc({ result });
  }

  peerSetChanged(size: number, diff: PeerSetDiff): void {
    this.peers.set(size);
    if (diff.added.length > 0) this.peerChanges.inc({ change: 'added' }, diff.added.length);
    if (diff.removed.length > 0) this.peerChanges.inc({ change: 'removed' }, diff.removed.length);
  }

  discoveryState(state: DiscoveryState): void {
    for (const s of DISCOVERY_STATES) this.discovery.set({ state: s }, s === state ? 1 : 0);
  }

  discoveryError(kind: string): void {
    this.discoveryErrors.inc({ kind });
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
