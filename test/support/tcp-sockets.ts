// The TCP connections a process holds, read from /proc: which remote peers it is connected to and
// over which local ports. Sampled while a test runs, it shows how many connections a process
// keeps to each peer at once (the pool cap) and how many it opened in all (churn).
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface TcpConnection {
  readonly remote: string;
  readonly localPort: number;
}

/** "0100007F:1F90" (little-endian IPv4, hex port) → ["127.0.0.1", 8080]. */
function parseAddress(hex: string): [string, number] {
  const [ip = '', port = ''] = hex.split(':');
  const bytes = [0, 2, 4, 6].map((i) => parseInt(ip.slice(i, i + 2), 16)).reverse();
  return [bytes.join('.'), parseInt(port, 16)];
}

// /proc/net/tcp states: 01 ESTABLISHED, 02 SYN_SENT. Closing states no longer carry probes.
const OPEN_STATES = new Set(['01', '02']);

/** The open IPv4 TCP connections of process `pid` to remote port `remotePort`. */
export function connectionsOf(pid: number, remotePort: number): TcpConnection[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // The descriptor closed while we looked.
    }
  }
  const out: TcpConnection[] = [];
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !OPEN_STATES.has(f[3]!) || !inodes.has(f[9]!)) continue;
    const [, localPort] = parseAddress(f[1]!);
    const [remote, port] = parseAddress(f[2]!);
    if (port === remotePort) out.push({ remote, localPort });
  }
  return out;
}

/** Samples `connectionsOf` every `everyMs` until stopped: the most at once per peer, and the local ports seen per peer. */
export function sampleConnections(pid: number, remotePort: number, everyMs = 10): { stop(): { maxAtOnce: number; opened: Map<string, number> } } {
  let maxAtOnce = 0;
  const ports = new Map<string, Set<number>>();
  const sample = (): void => {
    const perPeer = new Map<string, number>();
    for (const c of connectionsOf(pid, remotePort)) {
      perPeer.set(c.remote, (perPeer.get(c.remote) ?? 0) + 1);
      let seen = ports.get(c.remote);
      if (seen === undefined) ports.set(c.remote, (seen = new Set()));
      seen.add(c.localPort);
    }
    for (const n of perPeer.values()) maxAtOnce = Math.max(maxAtOnce, n);
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { maxAtOnce, opened: new Map([...ports].map(([k, v]) => [k, v.size])) };
    },
  };
}
