// Keeps repeated warnings to one per cause per period, so a lasting fault writes a line now and
// then instead of one per event. Causes come and go (peer names among them): the memory of past
// warnings is bounded.

export class WarnLimiter {
  private readonly lastWarned = new Map<string, number>();

  constructor(
    private readonly periodMs: number,
    private readonly now: () => number,
    private readonly maxCauses: number,
  ) {}

  /** True when a warning about `cause` is due now (and then it counts as given). */
  due(cause: string): boolean {
    const now = this.now();
    const last = this.lastWarned.get(cause);
    if (last !== undefined && now - last < this.periodMs) return false;
    if (this.lastWarned.size >= this.maxCauses) this.lastWarned.clear();
    this.lastWarned.set(cause, now);
    return true;
  }
}
