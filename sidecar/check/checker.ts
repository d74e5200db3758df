// Answers checks: admits them up to a bound, answers a check already known Synced from the
// memo, lets identical concurrent checks (same token AND origin) share one fan-out, and
// otherwise fans out to every peer but the origin, with the peer channels of the current set.
import type { Config } from '../config.js';
import type { FanOutResult, PeerSet, PeerSetDiff } from '../model.js';
import type { PeerChannel } from '../probe/peer-channel.js';
import type { PeerChannels } from '../probe/peer-channels.js';
import { fanOut, type FanOutDeps, type FanOutSettings } from './fan-out.js';
import { retryWindowMs } from './retry-policy.js';
import { SyncedMemo } from './synced-memo.js';
import { checkKey } from './token-keys.js';
import { reportUnexpected } from '../unexpected.js';

export interface CheckerSettings extends FanOutSettings {
  /** Check requests that may wait for a verdict at once; past it they are refused (overloaded). */
  readonly maxInFlight: number;
  readonly syncedTtlMs: number;
  readonly syncedMax: number;
  /** Name of the token header on probes, and the text before the token in it. */
  readonly probeHeader: string;
  readonly probeHeaderPrefix: string;
}

/** The checker's settings, taken from the configuration. */
export function checkerSettings(config: Config): CheckerSettings {
  return {
    hardTimeoutMs: config.hardTimeoutMs,
    retry: config.retry,
    retryWindowMs: retryWindowMs(config.hardTimeoutMs, config.probe.timeoutMs),
    probeHeader: config.probe.header,
    probeHeaderPrefix: config.probe.headerPrefix,
    ...config.checks,
  };
}

export interface CheckerObserver {
  /** A fan-out ended (once per fan-out, however many requests shared it). */
  fanOutDone(result: FanOutResult): void;
}

export type Admission =
  | { readonly kind: 'cached' }
  | { readonly kind: 'overloaded' }
  | { readonly kind: 'running'; readonly result: Promise<FanOutResult>; readonly shared: boolean };

const CACHED: Admission = Object.freeze({ kind: 'cached' });
const OVERLOADED: Admission = Object.freeze({ kind: 'overloaded' });
/** Origins seen with one peer set (pod names and IPs): each keeps its own target list. */
const MAX_TARGET_LISTS = 64;

interface Flight {
  readonly result: Promise<FanOutResult>;
  /** Requests waiting on it, the first included. */
  requests: number;
}

export class Checker {
  private readonly inflight = new Map<string, Flight>();
  private readonly memo: SyncedMemo;
  private readonly idleWaiters: Array<() => void> = [];
  private channels: readonly PeerChannel[] = [];
  private targetsByOrigin = new Map<string, readonly PeerChannel[]>();
  /** Bumped when the peer set gains a peer: verdicts from before did not ask it. */
  private epoch = 0;
  private waitingNow = 0;

  constructor(
    private readonly settings: CheckerSettings,
    private readonly peerChannels: PeerChannels,
    private readonly deps: FanOutDeps,
    private readonly observer: CheckerObserver,
  ) {
    this.memo = new SyncedMemo(settings.syncedTtlMs, settings.syncedMax, deps.now);
  }

  /** Check requests waiting for a verdict now. */
  get waiting(): number {
    return this.waitingNow;
  }

  /** Follows a new peer set: its channels, fresh target lists, and a forgotten memo if a peer joined. */
  peersChanged(set: PeerSet, diff: PeerSetDiff): void {
    this.channels = this.peerChannels.update(set.peers);
    this.targetsByOrigin = new Map();
    if (diff.added.length > 0) {
      this.epoch++;
      this.memo.clear();
    }
  }

  /** Admits a check of `token` issued at `origin` (a pod name or IP). Callers make sure a peer set exists. */
  check(token: string, origin: string): Admission {
    const key = checkKey(origin, token);
    if (this.memo.has(key)) return CACHED;
    const running = this.inflight.get(key);
    if (running === undefined && this.waitingNow >= this.settings.maxInFlight) return OVERLOADED;
    this.waitingNow++;
    if (running !== undefined) {
      running.requests++;
      return { kind: 'running', result: running.result, shared: true };
    }
    const headers = [this.settings.probeHeader, this.settings.probeHeaderPrefix + token];
    const flight: Flight = { result: fanOut(this.targets(origin), headers, this.settings, this.deps), requests: 1 };
    this.inflight.set(key, flight);
    const epoch = this.epoch;
    flight.result.then(
      (result) => {
        // After the requests are answered, where nobody awaits it: what throws here is reported.
        try {
          this.land(key, flight);
          if (result.verdict === 'Synced' && epoch === this.epoch) this.memo.remember(key);
          this.observer.fanOutDone(result);
        } catch (err) {
          reportUnexpected('promise', 'the end of a fan-out (memo, observers)', err);
        }
      },
      () => this.land(key, flight),
    );
    return { kind: 'running', result: flight.result, shared: false };
  }

  /** Resolves once no check is in flight (each is bounded by the hard deadline). */
  idle(): Promise<void> {
    if (this.inflight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Every peer but the origin (matched by pod name or IP), built once per peer set and origin. */
  private targets(origin: string): readonly PeerChannel[] {
    let targets = this.targetsByOrigin.get(origin);
    if (targets === undefined) {
      targets = this.channels.filter((c) => c.peer.name !== origin && c.peer.host !== origin);
      if (this.targetsByOrigin.size >= MAX_TARGET_LISTS) this.targetsByOrigin.clear();
      this.targetsByOrigin.set(origin, targets);
    }
    return targets;
  }

  private land(key: string, flight: Flight): void {
    this.inflight.delete(key);
    this.waitingNow -= flight.requests;
    if (this.inflight.size === 0) this.idleWaiters.splice(0).forEach((wake) => wake());
  }
}
