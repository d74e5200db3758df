// Starts apigw "pods" from the chart's rendered Deployment, ConfigMap and Secrets: Debian's
// nginx + lua (the oss flavor's stand-in) and the built sidecar, each pod in a network namespace
// of its own (support/pod-network.ts): its own address, its own 127.0.0.1. So the chart's
// defaults hold as in a cluster: every listener on its default port, the token API on the pod's
// loopback alone, probes arriving from the other pods' addresses, mutual TLS with the
// certificates the chart generated (one set for the release, the cluster's Secrets, mounted by
// every pod as the kubelet writes Secret volumes: packaging/secret-volume.ts).
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageAppDir, imageArgv, runtimeSpec } from './dockerfile.js';
import { CHART_DIR, render, type KubeObject } from './helm.js';
import { parse } from 'yaml';
import { podSpec, resolveEnv } from './k8s-objects.js';
import { container, makeEmptyDirs, materializeConfigMaps, runContainer, type StartedContainer } from './pod-sim.js';
import type { RunningContainer } from './pod-termination.js';
import { materializeSecrets, writeSecretVolume } from './secret-volume.js';
import { http, waitForHttp } from '../support/net.js';
import { deadline } from '../support/wait.js';
import type { Exit } from '../support/processes.js';
import { repoRoot } from '../support/repo-root.js';
import { DEBIAN_NGINX_MODULES, PROBE_PATH, TOKEN_ZONE, nginxMissing } from '../support/nginx.js';
import { podArgv, podNetworkMissing, type PodNetns, type PodNetwork } from '../support/pod-network.js';
import { inPod, statusOf, type PodAnswer, type PodRequest } from '../support/pod-request.js';
import { MAIN_JS, startSidecarProcess, type SidecarProcess } from '../support/sidecar-process.js';

/** values.yaml's nginx.peerSources. */
function defaultPeerSources(): string[] {
  // Read when a pod is rendered, not at import: a test that only checks its parts are present
  // must get that far on a tree without the chart.
  return (parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as { nginx: { peerSources: string[] } }).nginx.peerSources;
}

/** The chart's default ports: each pod has its own network namespace, nothing needs moving. */
export const PORTS = { nginx: 8000, probe: 8001, tokenApi: 8002, ops: 9090 } as const;

/** Why these tests cannot run here, or undefined when they can. */
export function podsMissing(): string | undefined {
  return nginxMissing() ?? podNetworkMissing() ?? (existsSync(MAIN_JS) ? undefined : `${MAIN_JS} is not built: run \`npm run build\``);
}

export interface PodOptions {
  readonly name: string;
  readonly policy?: 'wait-strict' | 'fail-open';
  /** nginx.preStopSleepSeconds (chart default 5). */
  readonly preStopSleepSeconds?: number;
  /** syncer.preStopSeconds (chart default: nginx's serving window, computed). */
  readonly syncerPreStopSeconds?: number;
  /** syncer.nativeSidecar (chart default false). */
  readonly nativeSidecar?: boolean;
  /** nginx.allowLoopbackPeers (chart default false). */
  readonly allowLoopbackPeers?: boolean;
  /** syncer.canary's period and timeout (chart default: every 10 s, 5 s). */
  readonly canary?: { readonly intervalMs: number; readonly timeoutMs: number };
  /** Names of the pods whose probe servers this pod's sidecar lists (default: every pod started together). */
  readonly peers?: readonly string[];
}

/** What every pod of a release shares: its tls values, the cluster's Secrets, the checks' deadline. */
export interface ReleaseOptions {
  /** More tls values for every pod (e.g. certManager.issuerRef); tls.mountPath is the pod's own. */
  readonly tls?: Readonly<Record<string, unknown>>;
  /**
   * The cluster's Secrets the pods mount, given the release's render (default: the Secrets the
   * chart generated in it; with cert-manager, a test plays the issuer here).
   */
  readonly secrets?: (rendered: readonly KubeObject[]) => Promise<readonly KubeObject[]>;
  /** More syncer.config settings for every pod (over hardTimeoutMs 600, fast retries). */
  readonly config?: Readonly<Record<string, unknown>>;
}

/** A sidecar's TLS files, to probe as it does. */
export interface ClientTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** The name the server certificate carries (SYNCER_PROBE_SERVERNAME). */
  readonly servername: string;
}

export interface SimPod {
  readonly name: string;
  readonly netns: PodNetns;
  /** The client server: http://<pod ip>:8000. */
  readonly base: string;
  /** The probe server: https://<pod ip>:8001 (mutual TLS). */
  readonly probeUrl: string;
  /** The ops listener: http://<pod ip>:9090. */
  readonly ops: string;
  readonly nginx: StartedContainer;
  readonly syncer: SidecarProcess;
  /** The chart values it was rendered from (tests lint them). */
  readonly values: Record<string, unknown>;
  /** Both containers as rendered and running, for pod-termination.ts. */
  readonly containers: readonly RunningContainer[];
  /** The rendered pod's terminationGracePeriodSeconds. */
  readonly gracePeriodSeconds: number;
  /** Where each Secret this pod mounts is written (one directory per container mount), by Secret name. */
  readonly secretDirs: ReadonlyMap<string, readonly string[]>;
  /** The files this pod's sidecar probes with (its SYNCER_PROBE_* settings). */
  readonly tls: ClientTls;
  /** A request from inside the pod (its own loopback, where the token API listens). */
  inside(r: PodRequest): Promise<PodAnswer>;
  /** Writes a token through the pod's token API (127.0.0.1:8002, reachable from the pod alone); resolves with the status. */
  postToken(token: string): Promise<number>;
  /** Stops the sidecar (SIGTERM) and nginx; resolves with the sidecar's exit. */
  stop(): Promise<Exit>;
}

export interface SimPods {
  readonly pods: readonly SimPod[];
  /** The cluster's Secrets every pod mounts (the chart's generated certificates). */
  readonly secrets: readonly KubeObject[];
  /** Rotates a Secret: new content written into every pod's volume of it, atomically, as the kubelet does. */
  rotateSecret(name: string, files: Readonly<Record<string, Buffer | string>>): void;
  stop(): Promise<void>;
}

/** The chart values of one pod: its files under dir, the test's pod network, short deadlines. */
function podValues(o: PodOptions, release: ReleaseOptions, dir: string, network: PodNetwork, peers: string): Record<string, unknown> {
  return {
    nginx: {
      loadModules: DEBIAN_NGINX_MODULES,
      confDir: join(dir, 'etc-apigw'),
      runDir: join(dir, 'run'),
      // The chart's default allow list with these pods' network added, as a cluster's pod CIDR
      // is set: what the defaults admit (loopback or not) is what these pods admit.
      peerSources: [...defaultPeerSources(), network.cidr],
      policy: o.policy ?? 'wait-strict',
      ...(o.allowLoopbackPeers === undefined ? {} : { allowLoopbackPeers: o.allowLoopbackPeers }),
      ...(o.preStopSleepSeconds === undefined ? {} : { preStopSleepSeconds: o.preStopSleepSeconds }),
    },
    // Rotations are picked up within a second rather than ten.
    tls: { reloadIntervalSeconds: 1, ...release.tls, mountPath: join(dir, 'tls') },
    syncer: {
      nativeSidecar: o.nativeSidecar ?? false,
      ...(o.canary === undefined ? {} : { canary: { enabled: true, ...o.canary } }),
      ...(o.syncerPreStopSeconds === undefined ? {} : { preStopSeconds: o.syncerPreStopSeconds }),
      discovery: 'static',
      // info: the "listening" line shows in a start-up failure's output.
      logLevel: 'info',
      config: {
        peers,
        // Short enough that a not-yet-replicated token answers quickly in the test.
        hardTimeoutMs: 600,
        retryDelayMs: 5,
        retryMaxDelayMs: 50,
        ...release.config,
      },
    },
  };
}

/** Renders the chart for one pod, lays out its volumes in a temp dir, starts both containers in its namespace. */
async function startPod(o: PodOptions, release: ReleaseOptions, netns: PodNetns, network: PodNetwork, peers: string, secrets: readonly KubeObject[]): Promise<SimPod> {
  const dir = mkdtempSync(join(tmpdir(), `apigw-pod-${o.name}-`));
  // Run as root, nginx's workers drop to "nobody" (in the pod they run as the pod's UID):
  // they must traverse to the config and the html root.
  chmodSync(dir, 0o755);
  const values = podValues(o, release, dir, network, peers);
  const objects = await render({ values });
  materializeConfigMaps(objects);
  makeEmptyDirs(objects);
  const secretDirs = materializeSecrets(objects, secrets);
  const fields = { 'metadata.name': o.name, 'metadata.namespace': 'apigw', 'status.podIP': netns.ip };
  const within = (argv: readonly string[]): string[] => podArgv(netns, argv);

  // The syncer container has no command: the image's ENTRYPOINT runs, from its WORKDIR.
  const dockerfile = readFileSync(join(repoRoot(), 'Dockerfile'), 'utf8');
  const argv = imageArgv(runtimeSpec(dockerfile));
  const workdir = imageAppDir(dockerfile, repoRoot());
  // Both containers start now: nginx answers within 30 s of it, the sidecar is ready within 30 s after.
  const nginxUp = deadline(30_000);
  const nginxSpec = container(objects, 'nginx');
  const syncerSpec = container(objects, 'syncer');
  const syncerEnv = resolveEnv(syncerSpec, fields);
  const tls: ClientTls = {
    ca: syncerEnv['SYNCER_PROBE_CA_FILE'] ?? '',
    cert: syncerEnv['SYNCER_PROBE_CERT_FILE'] ?? '',
    key: syncerEnv['SYNCER_PROBE_KEY_FILE'] ?? '',
    servername: syncerEnv['SYNCER_PROBE_SERVERNAME'] ?? '',
  };
  const nginx = await runContainer(nginxSpec, fields, within);
  let syncer: SidecarProcess;
  try {
    syncer = await startSidecarProcess(syncerEnv, { argv: within(argv), cwd: workdir, bareEnv: true, timeoutMs: 30_000 });
  } catch (err) {
    await nginx.stop(10_000);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n---\n${nginx.output()}`);
  }
  const pod: SimPod = {
    name: o.name,
    netns,
    base: `http://${netns.ip}:${PORTS.nginx}`,
    probeUrl: `https://${netns.ip}:${PORTS.probe}`,
    ops: `http://${netns.ip}:${PORTS.ops}`,
    nginx,
    syncer,
    values,
    secretDirs,
    tls,
    gracePeriodSeconds: podSpec(objects).terminationGracePeriodSeconds ?? 30,
    containers: [
      { spec: nginxSpec, native: false, process: nginx, init: nginx.init, env: resolveEnv(nginxSpec, fields), within },
      { spec: syncerSpec, native: syncerSpec.restartPolicy === 'Always', process: syncer.process, env: syncerEnv, within },
    ],
    inside: (r) => inPod(netns, r),
    async postToken(token) {
      const url = `http://127.0.0.1:${PORTS.tokenApi}/api/9/http/keyvals/${TOKEN_ZONE}`;
      return statusOf(await inPod(netns, { url, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ [token]: 'issued' }) }));
    },
    async stop() {
      const exit = await syncer.process.stop(10_000);
      await nginx.stop(10_000);
      rmSync(dir, { recursive: true, force: true });
      return exit;
    },
  };
  /** A 200 from url; gives up at once if a container exits; names both containers' output. */
  const waitHttp = (url: string, timeoutMs: number): Promise<unknown> =>
    waitForHttp(url, {
      timeoutMs,
      intervalMs: 50,
      abortIf: () => (nginx.exitStatus() !== undefined || syncer.process.exitStatus() !== undefined ? new Error(`a container exited while waiting for ${url}`) : undefined),
      context: () => `${nginx.output()}\n---\n${syncer.output()}`,
    });
  try {
    await waitHttp(`${pod.base}/nginx-healthz`, nginxUp.remainingMs());
    await waitHttp(`${pod.ops}/readyz`, 30_000);
  } catch (err) {
    await pod.stop();
    throw err;
  }
  return pod;
}

/**
 * Starts the pods of one release on `network`, each in a namespace of its own, all listing each
 * other as static peers (or `peers`). The cluster's Secrets are one render's (or `release.secrets`):
 * the certificates every pod mounts. If one pod fails, stops the others before rethrowing.
 */
export async function startPods(network: PodNetwork, specs: readonly PodOptions[], release: ReleaseOptions = {}): Promise<SimPods> {
  const namespaces = new Map<string, PodNetns>();
  for (const s of specs) namespaces.set(s.name, await network.addPod());
  const peersOf = (s: PodOptions): string =>
    (s.peers ?? specs.map((p) => p.name)).map((name) => `${name}=${namespaces.get(name)?.ip ?? name}:${PORTS.probe}`).join(',');
  const rendered = await render({ values: { tls: release.tls ?? {} } });
  const secrets = release.secrets === undefined ? rendered.filter((o) => o.kind === 'Secret') : await release.secrets(rendered);
  const results = await Promise.allSettled(specs.map((s) => startPod(s, release, namespaces.get(s.name)!, network, peersOf(s), secrets)));
  const pods = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(pods.map((p) => p.stop()));
    throw failed.reason;
  }
  return {
    pods,
    secrets,
    rotateSecret(name, files) {
      for (const pod of pods) for (const dir of pod.secretDirs.get(name) ?? []) writeSecretVolume(dir, files);
    },
    async stop() {
      await Promise.all(pods.map((p) => p.stop()));
    },
  };
}

/** Asks a pod's probe server about a token as a sidecar does (mutual TLS with its client certificate: `tls`, e.g. another pod's); resolves with the status. */
export async function probeAsPeer(pod: SimPod, tls: ClientTls, token: string): Promise<number> {
  const res = await http(`${pod.probeUrl}${PROBE_PATH}`, {
    headers: { authorization: `Bearer ${token}` },
    tls: { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), servername: tls.servername },
  });
  return res.status;
}
