// SYNCER_DISCOVERY=dns: the addresses of a headless Service name, resolved every intervalMs,
// minus this pod's own IP. Needs no RBAC. The Service should set publishNotReadyAddresses: true:
// the sidecar is not ready before its first peer set, so without it the first replica would
// never see even itself in DNS (the name would not resolve) and never become ready.
import { lookup } from 'node:dns/promises';
import type { Peer } from '../model.js';
import { reportUnexpected } from '../unexpected.js';
import type { PeerSource, SourceDeps } from './source.js';
import { realClock, type Clock } from './clock.js';

/** Resolves a name to its addresses; rejects when it cannot (NXDOMAIN, timeout, …). */
export type Resolver = (name: string) => Promise<readonly string[]>;

export interface DnsSourceOptions {
  readonly resolver?: Resolver;
  readonly clock?: Clock;
}

/** getaddrinfo, like every other client in the pod: honours /etc/hosts and the search path. */
export const systemResolver: Resolver = async (name) => {
  const answers = await lookup(name, { all: true, verbatim: true });
  return answers.map((a) => a.address);
};

export function peersFromAddresses(addresses: readonly string[], ownIp: string | undefined, port: number): Peer[] {
  const unique = [...new Set(addresses)].filter((a) => a !== ownIp);
  return unique.map((address) => ({ name: address, host: address, port }));
}

export function createDnsSource(deps: SourceDeps, options: DnsSourceOptions = {}): PeerSource {
  const { config, store } = deps;
  const log = deps.log.child({ component: 'discovery', mode: 'dns' });
  const name = config.discovery.dns.name ?? '';
  const resolver = options.resolver ?? systemResolver;
  const clock = options.clock ?? realClock;
  let stopped = false;
  let running: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let failing = false;
  // stop() must not wait for a lookup stuck in getaddrinfo's own retries.
  let signalStop!: () => void;
  const stopping = new Promise<undefined>((resolve) => (signalStop = () => resolve(undefined)));

  async function resolveOnce(): Promise<void> {
    let addresses: readonly string[] | undefined;
    try {
      addresses = await Promise.race([resolver(name), stopping]);
    } catch (err) {
      if (stopped) return;
      const e = err as NodeJS.ErrnoException;
      const reason = `resolving ${name} failed: ${e.code ?? e.message}`;
      store.reportFailure('resolve', reason);
      const hint = e.code === 'ENOTFOUND' || e.code === 'ENODATA' ? 'is it a headless Service with publishNotReadyAddresses: true?' : undefined;
      if (!failing) log.warn({ name, code: e.code, hint }, reason);
      else log.debug({ name, code: e.code }, reason);
      failing = true;
      return;
    }
    if (stopped || addresses === undefined) return;
    if (failing) log.info({ name }, 'DNS name resolves again');
    failing = false;
    store.publish(peersFromAddresses(addresses, config.pod.ip, config.probe.port));
  }

  async function loop(): Promise<void> {
    if (config.pod.ip === undefined) log.warn('POD_IP is unset: this pod cannot be left out of its own DNS peer set');
    while (!stopped) {
      try {
        await resolveOnce();
      } catch (err) {
        // Not the resolver's failure (that is handled above): a bug on the way to the store. The
        // last set keeps serving, and the next round tries again.
        reportUnexpected('promise', 'the DNS discovery loop', err);
      }
      if (stopped) break;
      // Sequential on purpose: a slow resolver never stacks lookups.
      await new Promise<void>((resolve) => {
        const timer = clock.setTimeout(done, config.discovery.dns.intervalMs);
        function done(): void {
          timer.cancel();
          wake = undefined;
          resolve();
        }
        wake = done;
      });
    }
  }

  return {
    start() {
      running ??= loop();
    },
    async stop() {
      stopped = true;
      signalStop();
      wake?.();
      await running;
    },
  };
}
