// Simulated pods that have what pods have on the network: each its own network namespace, with
// its own loopback (127.0.0.1 is the pod's alone: a token API there really is per pod) and one
// interface, eth0, holding the pod's address on a shared pod network. The addresses stay on
// loopback's range, as every test address does (a /24 of 127.x): route_localnet on each
// interface lets the kernel route them between namespaces instead of treating them as local.
//
//   test's namespace  ── veth ──┐
//   pod 1 (eth0 .11)  ── veth ──┤ bridge, in a "node" namespace of its own
//   pod 2 (eth0 .12)  ── veth ──┘
//
// The test process keeps its own namespace and reaches the pods through one veth holding
// <subnet>.1; processes run in a pod with `ip netns exec` (podArgv). A connection from pod to
// pod arrives from the pod's address, one from the test from <subnet>.1, one made inside a pod
// to 127.0.0.1 (as a mesh's sidecar forwards) from 127.0.0.1.
// Needs root and iproute2 (tests require them with podNetworkMissing). Names carry this
// process's pid, so parallel runs never meet; everything is removed by remove(), at exit
// whatever the exit, and, if this process was SIGKILLed, by the next run's sweep.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { execTracked, onExitCleanup } from './processes.js';

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
const PREFIX = 'apigw-pn';

/** Why pod networks cannot be made here, or undefined when they can. */
export function podNetworkMissing(): string | undefined {
  if (IP === undefined) return 'iproute2 (ip) is not installed (test/tooling/install-nginx.sh installs it)';
  if (process.getuid?.() !== 0) return 'network namespaces need root (the tests run as root: setup installs packages with apt-get)';
  return undefined;
}

function ipBin(): string {
  const missing = podNetworkMissing();
  if (missing !== undefined || IP === undefined) throw new Error(`a part this test needs is missing: ${missing ?? 'ip'}`);
  return IP;
}

async function ip(...args: string[]): Promise<void> {
  await execTracked(ipBin(), args);
}

/** Deletes namespaces of this prefix whose owning process is gone (a run that was SIGKILLed). */
function sweepStale(): void {
  let names: string[];
  try {
    names = execFileSync(ipBin(), ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0] ?? '');
  } catch {
    return;
  }
  for (const name of names) {
    const owner = new RegExp(`^${PREFIX}(\\d+)-`).exec(name)?.[1];
    if (owner === undefined || Number(owner) === process.pid) continue;
    try {
      process.kill(Number(owner), 0);
      continue; // its owner runs
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
    }
    deleteNamespace(name);
  }
}

/** Kills what still runs in a namespace, then deletes it (its interfaces go with it). */
function deleteNamespace(name: string): void {
  try {
    const pids = execFileSync(ipBin(), ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter((p) => /^\d+$/.test(p));
    for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
    execFileSync(ipBin(), ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // Already gone.
  }
}

/** One simulated pod's network: its namespace and its address on the pod network. */
export interface PodNetns {
  readonly ns: string;
  /** The pod IP, <subnet>.<n>. */
  readonly ip: string;
}

/** argv that runs `argv` inside the pod's network namespace (the pid stays the command's). */
export function podArgv(pod: PodNetns, argv: readonly string[]): string[] {
  return [ipBin(), 'netns', 'exec', pod.ns, ...argv];
}

export class PodNetwork {
  private readonly namespaces: string[] = [];
  private readonly unregister: () => void;
  private pods = 0;

  private constructor(
    /** The first three octets, e.g. "127.0.100". */
    readonly subnet: string,
    private readonly node: string,
  ) {
    this.namespaces.push(node);
    this.unregister = onExitCleanup(() => this.removeSync());
  }

  /** The pod network's CIDR: what nginx.peerSources lists for these pods. */
  get cidr(): string {
    return `${this.subnet}.0/24`;
  }

  /** The test process's own address on the pod network (the source of its connections to pods). */
  get testAddress(): string {
    return `${this.subnet}.1`;
  }

  /**
   * A pod network on `subnet` (three octets of 127.x: each test file its own, since the test's
   * namespace routes the /24 to it), with the test's namespace attached.
   */
  static async create(subnet: string): Promise<PodNetwork> {
    if (!/^127\.\d{1,3}\.\d{1,3}$/.test(subnet)) throw new Error(`a pod network stays on loopback's range: 127.x.y, not ${subnet}`);
    ipBin();
    sweepStale();
    const tag = `${PREFIX}${process.pid}-${subnet.split('.')[2]}`;
    const node = `${tag}-node`;
    await ip('netns', 'add', node);
    const net = new PodNetwork(subnet, node);
    try {
      await ip('-n', node, 'link', 'set', 'lo', 'up');
      await ip('-n', node, 'link', 'add', 'br0', 'type', 'bridge');
      await ip('-n', node, 'link', 'set', 'br0', 'up');
      // The test's end: a veth in this process's namespace, its peer on the bridge.
      const host = `ag${process.pid}t${subnet.split('.')[2]}`.slice(0, 15);
      await ip('link', 'add', 'name', host, 'type', 'veth', 'peer', 'name', 'test', 'netns', node);
      await ip('-n', node, 'link', 'set', 'test', 'master', 'br0', 'up');
      writeFileSync(`/proc/sys/net/ipv4/conf/${host}/route_localnet`, '1');
      await ip('addr', 'add', `${net.testAddress}/24`, 'dev', host);
      await ip('link', 'set', host, 'up');
    } catch (err) {
      await net.remove();
      throw err;
    }
    return net;
  }

  /** A new pod namespace on the network, with address <subnet>.<10 + n>. */
  async addPod(): Promise<PodNetns> {
    const n = ++this.pods;
    const pod: PodNetns = { ns: `${this.node.replace(/-node$/, '')}-pod${n}`, ip: `${this.subnet}.${10 + n}` };
    await ip('netns', 'add', pod.ns);
    this.namespaces.push(pod.ns);
    await ip('-n', pod.ns, 'link', 'set', 'lo', 'up');
    await ip('link', 'add', 'name', 'eth0', 'netns', pod.ns, 'type', 'veth', 'peer', 'name', `pod${n}`, 'netns', this.node);
    await ip('-n', this.node, 'link', 'set', `pod${n}`, 'master', 'br0', 'up');
    await execTracked(ipBin(), ['netns', 'exec', pod.ns, '/bin/sh', '-c', 'echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet']);
    await ip('-n', pod.ns, 'addr', 'add', `${pod.ip}/24`, 'dev', 'eth0');
    await ip('-n', pod.ns, 'link', 'set', 'eth0', 'up');
    return pod;
  }

  /** Kills whatever still runs in the pods, deletes every namespace (and so every interface). */
  async remove(): Promise<void> {
    this.removeSync();
    this.unregister();
  }

  private removeSync(): void {
    // The pods first, the node (bridge, the test's veth peer) last.
    for (const name of this.namespaces.splice(0).reverse()) deleteNamespace(name);
  }
}
