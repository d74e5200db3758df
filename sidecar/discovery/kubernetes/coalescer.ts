// Joins a burst of watch events into one recomputation. The window opens at the first event
// and is not extended by later ones, so the delay from any change to its peer set is bounded
// by windowMs (a trailing debounce could be postponed forever by a busy stream).
import { reportUnexpected } from '../../unexpected.js';
import type { Clock } from '../clock.js';

export class Coalescer {
  private timer: { cancel(): void } | undefined;

  constructor(
    private readonly windowMs: number,
    private readonly clock: Clock,
    private readonly run: () => void,
  ) {}

  trigger(): void {
    if (this.timer !== undefined) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      try {
        this.run();
      } catch (err) {
        // The last published set keeps serving; the next event recomputes.
        reportUnexpected('timer', 'peer-set recomputation', err);
      }
    }, this.windowMs);
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
