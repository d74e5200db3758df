// Bounds every probe by the same timeout with one timer for the whole process, instead of a
// timer (and an AbortController) per probe. Every probe gets the same bound, so expiry order is
// start order: a FIFO list, armed for its head. Settled probes are skipped lazily when they
// reach the head (they are held at most timeoutMs longer than needed).
import { CUT, type Probe } from './probe.js';

export class ProbeTimeouts {
  private head: Probe | undefined;
  private tail: Probe | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly timeoutMs: number,
    private readonly now: () => number,
  ) {}

  /** Starts the probe's clock: it is cut with CUT.timeout if not settled within timeoutMs. */
  add(probe: Probe): void {
    probe.expiresAt = this.now() + this.timeoutMs;
    probe.nextInSweep = undefined;
    if (this.tail === undefined) this.head = probe;
    else this.tail.nextInSweep = probe;
    this.tail = probe;
    if (this.timer === undefined) this.arm(probe.expiresAt);
  }

  /** Stops the timer (shutdown); probes still listed are left to their checks' deadlines. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.head = this.tail = undefined;
  }

  private arm(at: number): void {
    // Unref'd: a pending sweep alone must not keep the process alive.
    this.timer = setTimeout(() => this.sweep(), Math.max(1, Math.ceil(at - this.now()))).unref();
  }

  private sweep(): void {
    this.timer = undefined;
    const now = this.now();
    let p = this.head;
    // Settled probes at the head only wait for their turn to leave; skip them without a timer.
    while (p !== undefined && (p.isSettled || p.expiresAt <= now)) {
      if (!p.isSettled) p.cut(CUT.timeout);
      const next = p.nextInSweep;
      p.nextInSweep = undefined;
      p = next;
    }
    this.head = p;
    if (p === undefined) this.tail = undefined;
    else this.arm(p.expiresAt);
  }
}
