// The one owner of every peer's channel (and so of its connection pool): opened when a peer
// joins the set, departed and closed when it leaves — which also ends that peer's probes in
// running checks as 'departed', so no check ever probes through a closed pool. It also tells
// whoever listens when a connection to a peer opens, fails, or is closed by the peer: the only
// sign of a peer restarted at the same address (static and DNS discovery see no event).
import type { ConnectionOptions } from 'node:tls';
import type { Dispatcher } from 'undici';
// Pool's own module rather than undici's index, which loads fetch, WebSocket, the cache, mocks
// and every other dispatcher: the sidecar carries only the HTTP/1.1 pool it runs (about 3 MB
// less resident, 0.7 MB less to ship). Types: undici-pool.d.ts.
import Pool from 'undici/lib/dispatcher/pool.js';
import type { Config } from '../config.js';
import { peerKey, peerOrigin, type Peer } from '../model.js';
import { PeerChannel } from './peer-channel.js';
import { ProbeTimeouts } from './probe-timeouts.js';

export type ProbeSettings = Config['probe'];
/** CA, client certificate and server name for https probes (probe/tls-material.ts). */
export type TlsOptions = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername'>;

export interface ConnectionObserver {
  /**
   * A connection to a peer opened, could not be opened, or was closed or broken by the peer: what
   * was learnt from that peer before may be about an earlier incarnation of it.
   */
  peerConnectionChanged(): void;
}

/**
 * Connections undici closes itself (idle timeout, an aborted probe, `Connection: close`: all
 * UND_ERR_INFO) or that we close (a departed peer, a replaced pool) say nothing about the peer;
 * the next connection to it is reported anyway.
 */
const OUR_CLOSE = new Set(['UND_ERR_INFO', 'UND_ERR_DESTROYED', 'UND_ERR_CLOSED']);

export class PeerChannels {
  private readonly byKey = new Map<string, PeerChannel>();
  private readonly timeouts: ProbeTimeouts;
  private readonly observers: ConnectionObserver[] = [];
  private tls: TlsOptions | undefined;

  constructor(
    private readonly settings: ProbeSettings,
    now: () => number,
  ) {
    this.timeouts = new ProbeTimeouts(settings.timeoutMs, now);
  }

  /** Channels for `peers`, in their order: kept for staying peers, opened for new ones; peers gone depart. */
  update(peers: readonly Peer[]): PeerChannel[] {
    const next = new Map<string, PeerChannel>();
    const channels = peers.map((peer) => {
      const key = peerKey(peer);
      const channel = this.byKey.get(key) ?? new PeerChannel(peer, this.createPool(peer), this.settings.connectionsPerPeer, this.settings.path, this.timeouts);
      next.set(key, channel);
      return channel;
    });
    for (const [key, channel] of this.byKey) if (!next.has(key)) void channel.depart();
    this.byKey.clear();
    for (const [key, channel] of next) this.byKey.set(key, channel);
    return channels;
  }

  observe(observer: ConnectionObserver): void {
    this.observers.push(observer);
  }

  /** Rotated TLS material: every peer's next connections use it; open ones finish their probes. */
  setTls(tls: TlsOptions): void {
    this.tls = tls;
    for (const channel of this.byKey.values()) channel.replacePool(this.createPool(channel.peer));
  }

  async close(): Promise<void> {
    const channels = [...this.byKey.values()];
    this.byKey.clear();
    await Promise.all(channels.map((c) => c.depart()));
    this.timeouts.close();
  }

  /** A pool, or undici's refusal (configuration validates peers, so only a source's bug gets here). */
  private createPool(peer: Peer): Dispatcher | Error {
    const s = this.settings;
    try {
      const pool = new Pool(peerOrigin(s.scheme, peer.host, peer.port), {
        connections: s.connectionsPerPeer,
        pipelining: 1,
        // HTTP/1.1 only, though undici 8 would take HTTP/2 when an https peer offers it (ALPN):
        // the probe servers are nginx HTTP/1.1 listeners, and connectionsPerPeer is a bound on
        // probes in flight only when each connection carries one request at a time; cutting a
        // probe then drops its own connection, never a stream shared with other checks' probes.
        allowH2: false,
        keepAliveTimeout: 30_000,
        connect: { timeout: s.timeoutMs, ...this.tls },
        // Every probe is bounded by the shared sweep (probe-timeouts.ts): undici's per-request
        // header and body timers would only repeat that work on every request.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      pool.on('connect', this.connectionChanged);
      pool.on('connectionError', this.connectionChanged);
      pool.on('disconnect', (_origin, _targets, err) => {
        if (!OUR_CLOSE.has(err.code)) this.connectionChanged();
      });
      return pool;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  private readonly connectionChanged = (): void => {
    for (const o of this.observers) o.peerConnectionChanged();
  };
}
