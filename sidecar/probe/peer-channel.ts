// One peer's probes: an undici Pool capped at connectionsPerPeer, with our own FIFO in front.
// Probes past the cap wait here, not in undici: a probe given up while waiting (deadline,
// departure) leaves at once, where a request dispatched to undici stays queued until it reaches a
// socket (undici 8 withdraws a queued request only for its signal-driven API, request() and the
// like, which a bare dispatch handler does not use). So connections to a peer never exceed the
// cap, and a burst that outlived its checks leaves nothing behind to replay.
import type { Dispatcher } from 'undici';
import type { Peer } from '../model.js';
import { CUT, Probe, type ProbeListener, type ProbeOwner } from './probe.js';
import type { ProbeTimeouts } from './probe-timeouts.js';

export class PeerChannel implements ProbeOwner {
  /** Handed to undici and not released yet: at most `cap`. */
  private readonly inFlight = new Set<Probe>();
  private queue: Probe[] = [];
  private queueHead = 0;
  private departedFlag = false;

  constructor(
    readonly peer: Peer,
    /** An Error when undici refused the peer's origin: every probe then fails with it. */
    private pool: Dispatcher | Error,
    private readonly cap: number,
    private readonly path: string,
    private readonly timeouts: ProbeTimeouts,
  ) {}

  /** True once the peer left the peer set: its probes end as 'departed'. */
  get departed(): boolean {
    return this.departedFlag;
  }

  /** Sends one probe (or queues it behind the cap). The listener hears its result exactly once. */
  probe(headers: string[], listener: ProbeListener): Probe {
    const probe = new Probe(headers, listener, this);
    if (this.departedFlag) probe.cut(CUT.departed);
    else if (this.inFlight.size < this.cap) this.dispatch(probe);
    else this.queue.push(probe);
    return probe;
  }

  released(probe: Probe): void {
    this.inFlight.delete(probe);
    this.pump();
  }

  /** New connections use `pool` (rotated TLS material); the old pool finishes its probes, then closes. */
  replacePool(pool: Dispatcher | Error): void {
    const old = this.pool;
    this.pool = pool;
    // close() rejects only on a pool destroyed already (undici dispatcher-base.js): nothing left to end.
    if (!(old instanceof Error)) void old.close().catch(() => undefined);
  }

  /** The peer left: every probe waiting or in flight ends as 'departed', and the pool closes. */
  depart(): Promise<void> {
    this.departedFlag = true;
    const queued = this.queue.slice(this.queueHead);
    this.queue = [];
    this.queueHead = 0;
    for (const p of queued) p.cut(CUT.departed);
    for (const p of [...this.inFlight]) p.cut(CUT.departed);
    return this.pool instanceof Error ? Promise.resolve() : this.pool.destroy().catch(() => undefined);
  }

  private pump(): void {
    while (this.inFlight.size < this.cap && this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead++]!;
      if (!next.isSettled) this.dispatch(next);
    }
    // Drained after a backlog: forget the dispatched entries. Checked per released probe, so
    // nothing is written when nothing was queued (the common case).
    if (this.queueHead > 0 && this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
  }

  private dispatch(probe: Probe): void {
    this.inFlight.add(probe);
    // The probe's own clock starts here: time spent in our queue is the check deadline's business.
    this.timeouts.add(probe);
    // dispatch() reports its own failures through probe.onResponseError, synchronously or later.
    if (this.pool instanceof Error) probe.fail(this.pool);
    else this.pool.dispatch({ method: 'GET', path: this.path, headers: probe.headers }, probe);
  }
}
