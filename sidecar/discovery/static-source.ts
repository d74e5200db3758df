// SYNCER_DISCOVERY=static: the configured SYNCER_PEERS, published once.
import type { PeerSource, SourceDeps } from './source.js';

export function createStaticSource({ config, store }: SourceDeps): PeerSource {
  return {
    start: () => store.publish(config.discovery.staticPeers),
    stop: async () => {},
  };
}
