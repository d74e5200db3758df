// The TCP connections a process holds, read from /proc: which remote peers it is connected to and
// over which local ports. Sampled while a test runs, it shows how many connections a process
// keeps to each peer at once (the pool cap) and how many it opened in all (churn).
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface TcpConnection {
  readonly remote: string;
  readonly localPort: number;
  /** The socket's inode: one per socket, whatever /proc/net/tcp repeats. */
  readonly inode: string;
}

/** "0100007F:1F90" (little-endian IPv4, hex port) → ["127.0.0.1", 8080]. */
function parseAddress(hex: string): [string, number] {
  const [ip = '', port = ''] = hex.split(':');
  const bytes = [0, 2, 4, 6].map((i) => parseInt(ip.slice(i, i + 2), 16)).reverse();
  return [bytes.join('.'), parseInt(port, 16)];
}

// /proc/net/tcp states: 01 ESTABLISHED, 02 SYN_SENT. Closing states no longer carry probes.
const OPEN_STATES = new Set(['01', '02']);

/**
 * The open IPv4 TCP connections of process `pid` to remote port `remotePort`; with `anyState`,
 * also those the peer has closed and the process has not (CLOSE_WAIT…): every socket it still holds.
 */
export function connectionsOf(pid: number, remotePort: number, anyState = false): TcpConnection[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // The descriptor closed while we looked.
    }
  }
  // /proc/net/tcp is read a page at a time while the table changes, so a socket can be listed
  // twice (one inserted before the reader's position shifts the rest): count each inode once.
  const out = new Map<string, TcpConnection>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const inode = f[9];
    if (f.length < 10 || inode === undefined || !(anyState || OPEN_STATES.has(f[3]!)) || !inodes.has(inode)) continue;
    const [, localPort] = parseAddress(f[1]!);
    const [remote, port] = parseAddress(f[2]!);
    if (port === remotePort) out.set(inode, { remote, localPort, inode });
  }
  return [...out.values()];
}

/** Samples `connectionsOf` every `everyMs` until stopped: the most at once per peer (and that sample), and the local ports seen per peer. */
export function sampleConnections(pid: number, remotePort: number, everyMs = 10): { stop(): { maxAtOnce: number; worst: string; opened: Map<string, number> } } {
  let maxAtOnce = 0;
  let worst = '';
  const ports = new Map<string, Set<number>>();
  const sample = (): void => {
    const perPeer = new Map<string, number[]>();
    for (const c of connectionsOf(pid, remotePort)) {
      let local = perPeer.get(c.remote);
      if (local === undefined) perPeer.set(c.remote, (local = []));
      local.push(c.localPort);
      let seen = ports.get(c.remote);
      if (seen === undefined) ports.set(c.remote, (seen = new Set()));
      seen.add(c.localPort);
    }
    for (const [remote, local] of perPeer) {
      if (local.length <= maxAtOnce) continue;
      maxAtOnce = local.length;
      worst = `${remote} from local ports ${local.join(' ')}`;
    }
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { maxAtOnce, worst, opened: new Map([...ports].map(([k, v]) => [k, v.size])) };
    },
  };
}
