// A Checker wired as app.ts wires it, for in-process tests of the checker and the check API:
// settings from a parsed configuration, real peer channels (undici pools), peer sets set by hand.
import { Checker, checkerSettings } from '../../sidecar/check/checker.js';
import { diffPeers } from '../../sidecar/discovery/peer-set.js';
import type { FanOutResult, Peer } from '../../sidecar/model.js';
import { PeerChannels } from '../../sidecar/probe/peer-channels.js';
import { configFrom } from './discovery-harness.js';

export interface CheckerFixture {
  readonly checker: Checker;
  /** Every fan-out result, in the order they ended. */
  readonly results: FanOutResult[];
  /** Publishes `peers` as the next peer set, with its diff from the last one. */
  setPeers(peers: readonly Peer[]): void;
  /** Waits for the checks in flight, then closes every peer's pool. */
  close(): Promise<void>;
}

export function checkerFixture(env: Record<string, string> = {}, now: () => number = () => performance.now()): CheckerFixture {
  const config = configFrom(env);
  const channels = new PeerChannels(config.probe, now);
  const results: FanOutResult[] = [];
  const checker = new Checker(checkerSettings(config), channels, { now, random: Math.random }, { fanOutDone: (r) => results.push(r) });
  let current: readonly Peer[] = [];
  let version = 0;
  return {
    checker,
    results,
    setPeers(peers) {
      checker.peersChanged({ version: ++version, peers }, diffPeers(current, peers));
      current = peers;
    },
    close: () => checker.idle().then(() => channels.close()),
  };
}
