// Answers checks: admits them up to a bound, answers a check already known Synced from the
// memo, lets identical concurrent checks (same token AND origin) share one fan-out, and
// otherwise fans out to every peer but the origin, with the peer channels of the current set.
//
// Answers stay about the peers of their own time. `peerSetEpoch` grows when a peer joins: a
// request joins only a fan-out begun in its own epoch (one begun before asked fewer peers than
// the request sees: the request starts its own rather than widening that one, whose deadline
// already runs for the peers it has), and only a fan-out of the current epoch is remembered. A
// sign that a peer may have restarted at the same address (a connection to it opened, failed, or
// closed by it: probe/peer-channels.ts) clears the memo, and a fan-out whose first 200 came
// before that sign is not remembered either.
import type { Config } from '../config.js';
import type { FanOutResult, PeerSet, PeerSetDiff } from '../model.js';
import type { PeerChannel } from '../probe/peer-channel.js';
import type { PeerChannels } from '../probe/peer-channels.js';
import { fanOut, type FanOutDeps, type FanOutSettings, type RunningFanOut } from './fan-out.js';
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

/** A request waiting for a fan-out's verdict. */
export interface Waiting {
  readonly kind: 'running';
  readonly result: Promise<FanOutResult>;
  /** Joined a fan-out in flight. */
  readonly shared: boolean;
  /**
   * The client went away before the verdict (nginx gave up, or disconnected): the request stops
   * counting against maxInFlight at once. The last request to leave a fan-out ends it: its
   * probes are cut, and nobody's slot is held by work no one waits for. Idempotent; nothing once
   * the verdict is in.
   */
  leave(): void;
}

export type Admission = { readonly kind: 'cached' } | { readonly kind: 'overloaded' } | Waiting;

const CACHED: Admission = Object.freeze({ kind: 'cached' });
const OVERLOADED: Admission = Object.freeze({ kind: 'overloaded' });
/** Origins seen with one peer set (pod names and IPs): each keeps its own target list. */
const MAX_TARGET_LISTS = 64;

interface Flight {
  readonly key: string;
  readonly fanOut: RunningFanOut;
  readonly peerSetEpoch: number;
  /** Requests waiting on it now, the first included. */
  waiting: number;
  landed: boolean;
}

class Request implements Waiting {
  readonly kind = 'running';
  private left = false;

  constructor(
    private readonly checker: Checker,
    private readonly flight: Flight,
    readonly shared: boolean,
  ) {}

  get result(): Promise<FanOutResult> {
    return this.flight.fanOut.result;
  }

  leave(): void {
    if (this.left || this.flight.landed) return;
    this.left = true;
    this.checker.left(this.flight);
  }
}

export class Checker {
  /** The fan-out a new identical request may join, by check key. */
  private readonly joinable = new Map<string, Flight>();
  private readonly memo: SyncedMemo;
  private readonly idleWaiters: Array<() => void> = [];
  private channels: readonly PeerChannel[] = [];
  private targetsByOrigin = new Map<string, readonly PeerChannel[]>();
  /** Bumped when the peer set gains a peer: fan-outs from before did not ask it. */
  private peerSetEpoch = 0;
  /** When a peer last showed a sign of a restart: answers from before are not remembered. */
  private peerChangedAt = -Infinity;
  private flightsRunning = 0;
  private waitingNow = 0;

  constructor(
    private readonly settings: CheckerSettings,
    private readonly peerChannels: PeerChannels,
    private readonly deps: FanOutDeps,
    private readonly observer: CheckerObserver,
  ) {
    this.memo = new SyncedMemo(settings.syncedTtlMs, settings.syncedMax, deps.now);
    peerChannels.observe({
      peerConnectionChanged: () => {
        this.peerChangedAt = deps.now();
        this.memo.clear();
      },
    });
  }

  /** Check requests waiting for a verdict now. */
  get waiting(): number {
    return this.waitingNow;
  }

  /** Follows a new peer set: its channels, fresh target lists, and a new epoch if a peer joined. */
  peersChanged(set: PeerSet, diff: PeerSetDiff): void {
    this.channels = this.peerChannels.update(set.peers);
    this.targetsByOrigin = new Map();
    if (diff.added.length > 0) {
      this.peerSetEpoch++;
      this.joinable.clear();
      this.memo.clear();
    }
  }

  /** Admits a check of `token` issued at `origin` (a pod name or IP). Callers make sure a peer set exists. */
  check(token: string, origin: string): Admission {
    const key = checkKey(origin, token);
    if (this.memo.has(key)) return CACHED;
    const running = this.joinable.get(key);
    if (running !== undefined) {
      running.waiting++;
      this.waitingNow++;
      return new Request(this, running, true);
    }
    if (this.waitingNow >= this.settings.maxInFlight) return OVERLOADED;
    const headers = [this.settings.probeHeader, this.settings.probeHeaderPrefix + token];
    const flight: Flight = {
      key,
      fanOut: fanOut(this.targets(origin), headers, this.settings, this.deps),
      peerSetEpoch: this.peerSetEpoch,
      waiting: 1,
      landed: false,
    };
    this.joinable.set(key, flight);
    this.flightsRunning++;
    this.waitingNow++;
    flight.fanOut.result.then(
      (result) => {
        // After the requests are answered, where nobody awaits it: what throws here is reported.
        try {
          this.land(flight);
          if (result.verdict === 'Synced' && this.stillTrue(flight, result)) this.memo.remember(key);
          this.observer.fanOutDone(result);
        } catch (err) {
          reportUnexpected('promise', 'the end of a fan-out (memo, observers)', err);
        }
      },
      () => this.land(flight),
    );
    return new Request(this, flight, false);
  }

  /** Resolves once no check is in flight (each is bounded by the hard deadline). */
  idle(): Promise<void> {
    if (this.flightsRunning === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The channels a fan-out from `origin` probes in the current set (the canary's own fan-out uses them). */
  peersFrom(origin: string): readonly PeerChannel[] {
    return this.targets(origin);
  }

  /** A request of `flight` left before its verdict (Request.leave). */
  left(flight: Flight): void {
    this.waitingNow--;
    if (--flight.waiting > 0) return;
    this.unjoinable(flight);
    flight.fanOut.end();
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

  /** Whether a Synced verdict still holds: no peer joined since its fan-out began, none restarted since its first 200. */
  private stillTrue(flight: Flight, result: FanOutResult): boolean {
    return flight.peerSetEpoch === this.peerSetEpoch && (result.firstSyncedAt === null || result.firstSyncedAt > this.peerChangedAt);
  }

  private unjoinable(flight: Flight): void {
    if (this.joinable.get(flight.key) === flight) this.joinable.delete(flight.key);
  }

  private land(flight: Flight): void {
    flight.landed = true;
    this.unjoinable(flight);
    this.waitingNow -= flight.waiting;
    flight.waiting = 0;
    if (--this.flightsRunning === 0) this.idleWaiters.splice(0).forEach((wake) => wake());
  }
}
