// Bounds every probe by the same timeout with one timer for the whole process, instead of a
// timer (and an AbortController) per probe. Every probe gets the same bound, so expiry order is
// start order: a list in start order, the timer armed for its head. A probe leaves the list the
// moment it settles (O(1), doubly linked), so a finished check is never kept alive by it.
//
// The sweep looks after the event loop's poll phase, not before it: when the loop ran late (a
// busy or starved process), answers that reached the sockets in time are read first, so a late
// loop does not turn an answer into a timeout.
import { reportUnexpected } from '../unexpected.js';

/** What the sweep lists: a running probe, with its links in the list, told when its time is up. */
export interface Timed {
  expiresAt: number;
  sweep: ProbeTimeouts | undefined;
  prevInSweep: Timed | undefined;
  nextInSweep: Timed | undefined;
  /** Its time is up: it settles, and so leaves the list. */
  timedOut(): void;
}

export class ProbeTimeouts {
  private head: Timed | undefined;
  private tail: Timed | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly now: () => number,
  ) {}

  /** Starts the probe's clock: it is told timedOut() if not settled within timeoutMs. */
  add(probe: Timed): void {
    probe.expiresAt = this.now() + this.timeoutMs;
    probe.sweep = this;
    probe.prevInSweep = this.tail;
    probe.nextInSweep = undefined;
    if (this.tail === undefined) this.head = probe;
    else this.tail.nextInSweep = probe;
    this.tail = probe;
    if (this.timer === undefined) this.arm(probe.expiresAt);
  }

  /** The probe settled: it needs no clock any more. */
  remove(probe: Timed): void {
    const { prevInSweep: prev, nextInSweep: next } = probe;
    if (prev === undefined) this.head = next;
    else prev.nextInSweep = next;
    if (next === undefined) this.tail = prev;
    else next.prevInSweep = prev;
    probe.sweep = probe.prevInSweep = probe.nextInSweep = undefined;
  }

  /** Stops the timer (shutdown); probes still listed are left to their checks' deadlines. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(at: number): void {
    // Unref'd: a pending sweep alone must not keep the process alive.
    this.timer = setTimeout(afterIo, Math.max(1, Math.ceil(at - this.now())), this).unref();
  }

  /** The timer fired, and the I/O that was due with it has been read (afterIo). */
  sweep(): void {
    this.timer = undefined;
    if (this.closed) return;
    const now = this.now();
    // A timed-out probe settles, which removes it: the head moves on by itself.
    while (this.head !== undefined && this.head.expiresAt <= now) {
      const head = this.head;
      try {
        head.timedOut();
      } catch (err) {
        reportUnexpected('timer', 'probe timeout sweep', err);
      }
      // One that threw before settling leaves here, or the sweep would stop at it: the probes
      // behind it still time out, and its check still ends at its deadline.
      if (this.head === head) this.remove(head);
    }
    if (this.head !== undefined) this.arm(this.head.expiresAt);
  }
}

/** From a timer: sweep in this turn's check phase, after its poll phase read the sockets. */
function afterIo(sweep: ProbeTimeouts): void {
  setImmediate(sweepNow, sweep);
}

function sweepNow(sweep: ProbeTimeouts): void {
  sweep.sweep();
}
