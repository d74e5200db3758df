// One keep-alive connection pool per peer, reused across checks and closed when the peer leaves.
import { isIP } from 'node:net';
import { Pool } from 'undici';
import type { Config } from '../config.js';
import { peerKey, type Peer } from '../discovery/peer-set.js';

export class PeerPools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly probe: Config['probe']) {}

  get(peer: Peer): Pool {
    const key = peerKey(peer);
    let pool = this.pools.get(key);
    if (pool === undefined) {
      pool = this.create(peer);
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Closes the pools of peers no longer in the set; in-flight probes on them finish first. */
  retain(peers: readonly Peer[]): void {
    const keep = new Set(peers.map(peerKey));
    for (const [key, pool] of this.pools) {
      if (keep.has(key)) continue;
      this.pools.delete(key);
      void pool.close().catch(() => pool.destroy());
    }
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
  }

  private create(peer: Peer): Pool {
    const host = isIP(peer.host) === 6 ? `[${peer.host}]` : peer.host;
    // Each probe is bounded by its own abort timer (prober.ts); the pool's timeouts are backstops.
    const timeout = this.probe.timeoutMs;
    return new Pool(`${this.probe.scheme}://${host}:${peer.port}`, {
      connections: this.probe.connectionsPerPeer,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { timeout },
      headersTimeout: timeout * 4,
      bodyTimeout: timeout * 4,
    });
  }
}
