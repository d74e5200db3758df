// Probes of one simulated replica through the real channel owner (PeerChannels → PeerChannel →
// undici Pool → Probe), in-process, with an injected clock for the shared timeout sweep. Each
// probe carries its own token (its name), so the replica's per-token counts say which ones
// reached it.
import { PeerChannels, type ProbeSettings } from '../../sidecar/probe/peer-channels.js';
import type { PeerChannel } from '../../sidecar/probe/peer-channel.js';
import type { Probe, ProbeResult } from '../../sidecar/probe/probe.js';
import { freePort } from './net.js';
import { ReplicaServer } from './replica-server.js';
import { waitFor } from './wait.js';

export interface Probing {
  readonly replica: ReplicaServer;
  readonly channels: PeerChannels;
  readonly channel: PeerChannel;
  /** The sweep's clock (ms); the sweep looks at it when its timer fires (every timeoutMs at most). */
  now: number;
  /** Sends a probe whose token is `name`. */
  probe(name: string): Probe;
  /** Every result each probe was told, by name, in order. */
  readonly results: Map<string, ProbeResult[]>;
  /** Waits for the probe's first result. */
  resultOf(name: string): Promise<ProbeResult>;
}

export interface ProbingOptions {
  /** A 127.x address for the replica. */
  readonly host: string;
  readonly connectionsPerPeer: number;
  readonly timeoutMs: number;
}

export async function startProbing(t: { teardown(fn: () => Promise<void>): void }, options: ProbingOptions): Promise<Probing> {
  const port = await freePort(options.host);
  const replica = await ReplicaServer.start({ host: options.host, port });
  const settings: ProbeSettings = {
    scheme: 'http',
    port,
    path: '/apigw-syncer/probe',
    header: 'authorization',
    headerPrefix: 'Bearer ',
    timeoutMs: options.timeoutMs,
    connectionsPerPeer: options.connectionsPerPeer,
    tls: { caFile: undefined, certFile: undefined, keyFile: undefined, servername: undefined },
  };
  const clock = { now: 0 };
  const channels = new PeerChannels(settings, () => clock.now);
  const [channel] = channels.update([{ name: 'replica', host: options.host, port }]);
  const results = new Map<string, ProbeResult[]>();
  t.teardown(async () => {
    await channels.close();
    await replica.close();
  });
  return Object.assign(clock, {
    replica,
    channels,
    channel: channel!,
    results,
    probe(name: string): Probe {
      return channel!.probe(['authorization', `Bearer ${name}`], {
        probeSettled: (_probe, result) => results.set(name, [...(results.get(name) ?? []), result]),
      });
    },
    resultOf: (name: string) => waitFor(() => results.get(name)?.[0], `the result of probe ${name}`),
  });
}
