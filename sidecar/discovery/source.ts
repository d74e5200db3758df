// A discovery source: anything that publishes whole peer sets into the PeerStore.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { PeerStore } from './peer-store.js';

export interface PeerSource {
  /** Begins discovery; failures are reported to the store (reportFailure) and logs, never thrown. */
  start(): void;
  /** Stops watches and timers; resolves when nothing of the source is left running. */
  stop(): Promise<void>;
}

export interface SourceDeps {
  readonly config: Config;
  readonly store: PeerStore;
  readonly log: Logger;
}
