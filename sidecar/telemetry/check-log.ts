// What a person tailing one pod's logs sees of checks: one info line per check that probed, the
// per-peer detail at debug, and one warning per misconfigured peer and status every 10 s. An
// observer of the check API and the checker (app.ts wires it); it sees fingerprints, never tokens.
import type { Logger } from 'pino';
import type { CheckerObserver } from '../check/checker.js';
import type { ApiObserver } from '../http/api-server.js';
import { peerKey, type CheckAnswered, type FanOutResult } from '../model.js';
import { WarnLimiter } from './warn-limiter.js';

/** Repeated misconfiguration warnings for one peer and status are kept to one per this period. */
const WARN_EVERY_MS = 10_000;
/** Peers come and go: the memory of past warnings is bounded. */
const MAX_WARNED = 1024;

/** A memo hit costs a lookup; a log line would cost more than the answer: memo hits at debug. */
function levelOf(cached: boolean): 'info' | 'debug' {
  return cached ? 'debug' : 'info';
}

export class CheckLog implements CheckerObserver, Pick<ApiObserver, 'wantsFingerprint' | 'answered'> {
  private readonly warnings: WarnLimiter;

  constructor(
    private readonly log: Logger,
    private readonly probePath: string,
    now: () => number,
  ) {
    this.warnings = new WarnLimiter(WARN_EVERY_MS, now, MAX_WARNED);
  }

  /** Whether such an answer gets a line (and so needs the token's fingerprint). */
  wantsFingerprint(cached: boolean): boolean {
    return this.log.isLevelEnabled(levelOf(cached));
  }

  answered(e: CheckAnswered): void {
    const { result } = e;
    const level = levelOf(e.cached);
    if (!this.log.isLevelEnabled(level)) return;
    const counts = { synced: 0, missing: 0, error: 0, timeout: 0, departed: 0 };
    for (const p of result.peers) counts[p.outcome]++;
    this.log[level](
      { checkId: e.checkId, origin: e.origin, fp: e.fingerprint, verdict: result.verdict, durationMs: e.durationMs, peers: result.peers.length, ...counts, shared: e.shared, cached: e.cached },
      'check',
    );
    if (!e.cached && this.log.isLevelEnabled('debug')) this.log.debug({ checkId: e.checkId, peers: result.peers }, 'check peers');
  }

  fanOutDone(result: FanOutResult): void {
    for (const m of result.misconfigured) {
      if (!this.warnings.due(`${peerKey(m.peer)} ${m.status ?? m.errorCode ?? ''}`)) continue;
      this.log.warn(
        { peer: m.peer.name, host: m.peer.host, port: m.peer.port, status: m.status, code: m.errorCode, path: this.probePath },
        m.status !== null
          ? 'peer answered the probe with an unexpected status: check SYNCER_PROBE_PATH, SYNCER_PROBE_PORT and the peer’s probe location'
          : 'peer could not be probed as configured (TLS or address): check SYNCER_PROBE_SCHEME, SYNCER_PROBE_CA_FILE, SYNCER_PROBE_SERVERNAME and the peer’s certificate',
      );
    }
  }
}
