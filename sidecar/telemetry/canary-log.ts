// What a person tailing one pod's logs sees of the canary: a warning when this pod's token API
// refused the key (naming the cause) or when the key did not reach every peer (naming them), each
// cause at most once per quiet period while it lasts, a line when the canary is whole again, and
// every run at debug. An observer of the canary; the key is never part of what it sees.
import type { Logger } from 'pino';
import type { CanaryReport } from '../model.js';
import { WarnLimiter } from './warn-limiter.js';

/** A lasting failure is repeated at most this often (or once per interval, when longer): the metrics count every run. */
const QUIET_MS = 60_000;
/** Distinct causes remembered (sets of peer names among them). */
const MAX_CAUSES = 64;

export class CanaryLog {
  private readonly warnings: WarnLimiter;
  private whole = true;

  constructor(
    private readonly log: Logger,
    intervalMs: number,
    now: () => number,
  ) {
    this.warnings = new WarnLimiter(Math.max(QUIET_MS, intervalMs), now, MAX_CAUSES);
  }

  ran(report: CanaryReport): void {
    const notArrived = report.peers.filter((p) => p.result !== 'arrived').map((p) => ({ name: p.name, result: p.result }));
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug({ result: report.result, peers: report.peers.length, notArrived, durationMs: report.endedAt - report.startedAt }, 'canary run');
    }
    if (report.result === 'synced') {
      if (!this.whole) this.log.info({ peers: report.peers.length }, 'canary: the key reached every peer again');
      this.whole = true;
      return;
    }
    this.whole = false;
    if (report.result === 'write_failed') {
      const cause = report.cause ?? 'unknown';
      if (this.warnings.due(`write ${cause}`)) {
        this.log.warn({ cause }, "canary: this pod's token API did not take the canary key, so nothing was probed: check SYNCER_CANARY_URL and nginx's token API server");
      }
      return;
    }
    if (this.warnings.due(`peers ${notArrived.map((p) => `${p.name}:${p.result}`).join(',')}`)) {
      this.log.warn({ notArrived, arrived: report.peers.length - notArrived.length }, 'canary: the key did not reach these peers in time: replication to them is broken or slow');
    }
  }
}
