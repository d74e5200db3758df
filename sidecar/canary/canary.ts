// The canary: replication watched with no client traffic. Every intervalMs it writes a fresh
// random key into this pod's own token store (which replicates it like any token), then probes
// every peer for it on the normal probe path — the checks' fan-out, peer channels and retry
// policy, under a deadline of its own — and reports per peer when the key arrived, or that it did
// not. It stands apart from the checks: never admitted, memoized or counted as one. A report is
// all it produces (app.ts hands it to logs, metrics and /readyz); it never decides readiness, so
// a broken zone_sync cannot take every replica out of service at once.
//
// The key is useless as a credential: 256 random bits no one else ever sees, a value no client
// token has (CANARY_VALUE, which the apigw's own auth refuses: README "Canary"), expiring a few
// seconds after the run; it lives in this process only while the run needs it, and is never
// logged or reported.
import { randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import type { CanaryPeer, CanaryReport, FanOutResult } from '../model.js';
import type { PeerChannel } from '../probe/peer-channel.js';
import { fanOut, type FanOutSettings } from '../check/fan-out.js';
import { retryWindowMs } from '../check/retry-policy.js';
import type { WriteOutcome } from './token-api.js';
import { reportUnexpected } from '../unexpected.js';

/** The value written with every canary key: the apigw's client-facing auth refuses a token holding it. */
export const CANARY_VALUE = 'apigw-syncer-canary';
/** The key expires this long after its run's deadline: long enough for the last probe, short enough to be useless. */
export const KEY_EXPIRY_MARGIN_MS = 2_000;
/** A canary run's retries are bounded by its deadline alone (checks stop at SYNCER_MAX_RETRIES). */
const CANARY_MAX_RETRIES = 10_000;

export interface CanarySettings {
  readonly intervalMs: number;
  readonly probeHeader: string;
  readonly probeHeaderPrefix: string;
  /** The run's fan-out: its deadline is SYNCER_CANARY_TIMEOUT_MS. */
  readonly fanOut: FanOutSettings;
  /** The key's expiry, sent with the write. */
  readonly expireMs: number;
}

/** The canary's settings, from the configuration (the canary is on). */
export function canarySettings(config: Config, canary: NonNullable<Config['canary']>): CanarySettings {
  return {
    intervalMs: canary.intervalMs,
    probeHeader: config.probe.header,
    probeHeaderPrefix: config.probe.headerPrefix,
    fanOut: {
      hardTimeoutMs: canary.timeoutMs,
      retry: { ...config.retry, maxRetries: CANARY_MAX_RETRIES },
      retryWindowMs: retryWindowMs(canary.timeoutMs, config.probe.timeoutMs),
    },
    expireMs: canary.timeoutMs + KEY_EXPIRY_MARGIN_MS,
  };
}

export interface CanaryDeps {
  /** The peers a run probes (every one but this pod), or undefined before the first peer set. */
  readonly targets: () => readonly PeerChannel[] | undefined;
  /** Writes the key into this pod's token store (token-api.ts). */
  readonly write: (key: string, value: string, expireMs: number) => Promise<WriteOutcome>;
  /** Monotonic ms, for the fan-out. */
  readonly now: () => number;
  /** Unix ms, for the report's times. */
  readonly wallClock: () => number;
  readonly random: () => number;
}

export interface CanaryObserver {
  /** A run ended with this report. */
  ran(report: CanaryReport): void;
}

/** A fresh key: 256 bits from the CSPRNG, base64url (43 characters). */
function randomKey(): string {
  return randomBytes(32).toString('base64url');
}

/** A fan-out's result as the canary's report: departed peers left out; synced only if every other peer got the key. */
export function canaryReport(result: FanOutResult, startedAt: number, endedAt: number): CanaryReport {
  const peers: CanaryPeer[] = [];
  for (const p of result.peers) {
    if (p.outcome === 'departed') continue;
    peers.push({ name: p.name, result: p.outcome === 'synced' ? 'arrived' : p.outcome, delayMs: p.syncedAtMs });
  }
  return { result: peers.every((p) => p.result === 'arrived') ? 'synced' : 'incomplete', startedAt, endedAt, cause: null, peers };
}

export class Canary {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private last: CanaryReport | undefined;

  constructor(
    private readonly settings: CanarySettings,
    private readonly deps: CanaryDeps,
    private readonly observer: CanaryObserver,
  ) {}

  /** The last run's report, until the first run ends undefined. */
  get lastReport(): CanaryReport | undefined {
    return this.last;
  }

  /** The first run comes one interval from now (nginx in the same pod has started by then). */
  start(): void {
    this.schedule(this.settings.intervalMs);
  }

  /** No run starts any more; resolves when the one running, if any, has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One run: write, probe, report (nothing without a peer set, nor when cut short by stop). */
  private async run(): Promise<void> {
    if (this.deps.targets() === undefined) return;
    const startedAt = this.deps.wallClock();
    const key = randomKey();
    const written = await this.deps.write(key, CANARY_VALUE, this.settings.expireMs);
    let report: CanaryReport;
    if (written.ok) {
      const headers = [this.settings.probeHeader, this.settings.probeHeaderPrefix + key];
      const { result } = fanOut(this.deps.targets() ?? [], headers, this.settings.fanOut, this.deps);
      const ended = await result;
      // Cut short by shutdown (the channels closed under it): no verdict on replication.
      if (this.stopped) return;
      report = canaryReport(ended, startedAt, this.deps.wallClock());
    } else {
      report = { result: 'write_failed', startedAt, endedAt: this.deps.wallClock(), cause: written.cause, peers: [] };
    }
    this.last = report;
    this.observer.ran(report);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(this.tick, delayMs);
    this.timer.unref();
  }

  private readonly tick = (): void => {
    const started = this.deps.now();
    // A bug of the run's own (never anything a peer or the token API did) is contained: the next
    // run still comes.
    this.running = this.run().catch((err: unknown) => reportUnexpected('promise', 'a canary run', err));
    // Runs never overlap: the next starts one interval after this one started, or when it ends.
    void this.running.then(() => this.schedule(Math.max(0, this.settings.intervalMs - (this.deps.now() - started))));
  };
}
