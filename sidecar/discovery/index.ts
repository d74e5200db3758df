// Picks the discovery source named by SYNCER_DISCOVERY.
import { createDnsSource } from './dns-source.js';
import { createKubernetesSource } from './kubernetes/kubernetes-source.js';
import type { PeerSource, SourceDeps } from './source.js';
import { createStaticSource } from './static-source.js';

export function createPeerSource(deps: SourceDeps): PeerSource {
  switch (deps.config.discovery.mode) {
    case 'static':
      return createStaticSource(deps);
    case 'kubernetes':
      return createKubernetesSource(deps);
    case 'dns':
      return createDnsSource(deps);
  }
}
