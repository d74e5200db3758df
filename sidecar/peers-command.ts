// `apigw-syncer peers`: run discovery once, print what it found and why, exit. Outside a cluster
// the current kubeconfig is used (KUBECONFIG or ~/.kube/config, else the pod's service account:
// api-credentials.ts), so an operator can see exactly what a sidecar would see.
import { pino } from 'pino';
import type { Config } from './config.js';
import { createDnsSource } from './discovery/dns-source.js';
import { loadApiCredentials } from './discovery/kubernetes/api-credentials.js';
import type { ApiCredentials } from './discovery/kubernetes/credentials.js';
import { createKubernetesSource, type KubernetesSource } from './discovery/kubernetes/kubernetes-source.js';
import { PeerStore } from './discovery/peer-store.js';
import type { PeerSource } from './discovery/source.js';
import type { PeerSet } from './model.js';
import { DiscoveryLog } from './telemetry/discovery-log.js';
import { createLogger } from './telemetry/logger.js';

export interface PeersCommandOptions {
  readonly credentials?: ApiCredentials;
  readonly deadlineMs?: number;
  /** Where logs go; stderr by default, so stdout holds only the table. */
  readonly logFd?: number;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

const DEFAULT_DEADLINE_MS = 10_000;

export async function runPeersCommand(config: Config, out: NodeJS.WritableStream, options: PeersCommandOptions = {}): Promise<number> {
  const write = (line = ''): void => void out.write(`${line}\n`);
  let effective = config;
  let credentials = options.credentials;
  if (config.discovery.mode === 'kubernetes') {
    const env = options.env ?? process.env;
    credentials ??= await loadApiCredentials(env);
    // Outside a pod, POD_NAMESPACE is usually unset: the kubeconfig context's namespace is what
    // kubectl would use, so it is the least surprising default here.
    const contextNs = credentials.contextNamespace;
    if ((env['POD_NAMESPACE'] ?? '') === '' && contextNs !== undefined && contextNs !== '') {
      effective = { ...config, pod: { ...config.pod, namespace: contextNs } };
    }
  }
  // Operators read the table; only warnings and errors go to the log stream unless asked for more.
  const logLevel = effective.logLevel === 'info' ? 'warn' : effective.logLevel;
  const log = createLogger({ ...effective, logLevel }, pino.destination({ dest: options.logFd ?? 2, sync: true }));
  const store = new PeerStore();
  store.observe(new DiscoveryLog(log));
  const deps = { config: effective, store, log };

  if (effective.discovery.mode === 'static') {
    store.publish(effective.discovery.staticPeers);
    printSimple(write, 'static (SYNCER_PEERS)', store.current());
    return 0;
  }

  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), deadlineMs)));
  let source: PeerSource;
  let kube: KubernetesSource | undefined;
  let set: PeerSet | undefined;
  try {
    if (effective.discovery.mode === 'kubernetes' && credentials !== undefined) {
      // Credentials first, within the deadline: a kubeconfig exec plugin that hangs or fails is
      // named as such, not mistaken for a slow API server.
      const problem = await credentialProblem(credentials, timedOut, deadlineMs);
      if (problem !== undefined) {
        write(`error: ${problem}`);
        return 1;
      }
      kube = createKubernetesSource(deps, { credentials });
      source = kube;
    } else {
      source = createDnsSource(deps);
    }
    source.start();
    set = await Promise.race([store.ready(), timedOut]);
  } finally {
    clearTimeout(timer);
  }
  await source.stop();

  if (set === undefined) {
    const why = kube?.lastProblem() ?? (effective.discovery.mode === 'dns' ? `could not resolve ${effective.discovery.dns.name ?? ''}` : undefined);
    write(`error: no peer set within ${deadlineMs / 1000} s (discovery: ${effective.discovery.mode}, namespace ${effective.pod.namespace})`);
    write(`  last problem: ${why ?? 'none reported (is the API server slow?)'}`);
    return 1;
  }
  if (kube !== undefined) printKubernetes(write, effective, kube, set);
  else printSimple(write, `dns (${effective.discovery.dns.name ?? ''}, own IP ${effective.pod.ip ?? 'unset'} left out)`, set);
  return 0;
}

/** Why `credentials` give nothing before `deadline` settles, or undefined once they give them. */
async function credentialProblem(credentials: ApiCredentials, deadline: Promise<undefined>, deadlineMs: number): Promise<string | undefined> {
  const got = credentials.authorize({}).then(
    () => true as const,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  const result = await Promise.race([got, deadline]);
  if (result === true) return undefined;
  if (result === undefined) return `no credentials within ${deadlineMs / 1000} s (${credentials.source} did not finish)`;
  return `no credentials (${credentials.source} failed: ${result.message.trim()})`;
}

function printSimple(write: (line?: string) => void, what: string, set: PeerSet | undefined): void {
  const peers = set?.peers ?? [];
  write(`discovery: ${what}`);
  write();
  table(write, ['NAME', 'HOST', 'PORT'], peers.map((p) => [p.name, p.host, String(p.port)]));
  write();
  write(`${peers.length} peer(s)`);
}

function printKubernetes(write: (line?: string) => void, config: Config, kube: KubernetesSource, set: PeerSet): void {
  const c = kube.lastComputation();
  const k = config.discovery.kubernetes;
  write(`discovery: kubernetes, Deployment ${kube.deployment() ?? '?'} in namespace ${config.pod.namespace}, scope ${k.scope}`);
  if (c?.ok === true) write(`active revision ${c.revision ?? '?'} (ReplicaSet ${c.activeReplicaSet ?? '?'}, peers from ${c.servingReplicaSet ?? '?'}); probe port ${config.probe.port}`);
  write();
  const rows = (c?.pods ?? []).map((p) => [
    p.name,
    p.ip ?? '-',
    p.ready ? 'yes' : 'no',
    p.replicaSet ?? '-',
    p.revision ?? '-',
    p.included ? (p.name === config.pod.name ? 'peer (this pod)' : 'peer') : `no: ${p.reason}`,
  ]);
  table(write, ['NAME', 'IP', 'READY', 'REPLICASET', 'REVISION', 'INCLUDED'], rows);
  write();
  write(`${set.peers.length} peer(s)`);
}

function table(write: (line?: string) => void, header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  write(line(header));
  for (const r of rows) write(line(r));
}
