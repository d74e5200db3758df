// Starts apigw "pods" from the chart's rendered Deployment and ConfigMap: Debian's nginx + lua
// (the oss flavor's stand-in) and the built sidecar, each on its own loopback address. What
// differs from the harness pods of support/nginx.ts is the config: here it is the chart's.
// Tokens are written (through each pod's loopback token API) and probed (on its probe server)
// with support/nginx.ts (postToken, probe).
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageAppDir, imageArgv, runtimeSpec } from './dockerfile.js';
import { render } from './helm.js';
import { podSpec, resolveEnv } from './k8s-objects.js';
import { container, makeEmptyDirs, materializeConfigMaps, runContainer, type Started } from './pod-sim.js';
import type { RunningContainer } from './pod-termination.js';
import { freePort, waitForHttp } from '../support/net.js';
import { deadline } from '../support/wait.js';
import type { Exit } from '../support/processes.js';
import { repoRoot } from '../support/repo-root.js';
import { DEBIAN_NGINX_MODULES, nginxMissing } from '../support/nginx.js';
import { MAIN_JS, startSidecarProcess, type SidecarProcess } from '../support/sidecar-process.js';

/** Why these tests cannot run here, or undefined when they can. */
export function podsMissing(): string | undefined {
  return nginxMissing() ?? (existsSync(MAIN_JS) ? undefined : `${MAIN_JS} is not built: run \`npm run build\``);
}

export interface PodSpecOptions {
  readonly name: string;
  readonly ip: string; // 127.0.4.x
  /** nginx.port: the client server. */
  readonly nginxPort: number;
  /** nginx.probePort: the probe server. */
  readonly probePort: number;
  /** The sidecar's check API (SYNCER_LISTEN_ADDR's port). */
  readonly apiPort: number;
  readonly opsPort: number;
  /** SYNCER_PEERS of every pod: name=ip:probePort,... */
  readonly peers: string;
  readonly policy?: 'wait-strict' | 'fail-open';
  /** nginx.preStopSleepSeconds (chart default 5). */
  readonly preStopSleepSeconds?: number;
  /** syncer.preStopSeconds (chart default: nginx's serving window, computed). */
  readonly syncerPreStopSeconds?: number;
  /** syncer.nativeSidecar (chart default false). */
  readonly nativeSidecar?: boolean;
}

export interface SimPod {
  readonly name: string;
  readonly base: string; // http://ip:nginxPort
  readonly probeBase: string; // http://ip:probePort
  /** The token write API: http://127.0.0.1:<nginx.apiPort>, a free port per pod (loopback is shared here). */
  readonly tokenApi: string;
  readonly ops: string; // http://ip:opsPort
  readonly nginx: Started;
  readonly syncer: SidecarProcess;
  /** The chart values it was rendered from (tests lint them). */
  readonly values: Record<string, unknown>;
  /** Both containers as rendered and running, for pod-termination.ts. */
  readonly containers: readonly RunningContainer[];
  /** The rendered pod's terminationGracePeriodSeconds. */
  readonly gracePeriodSeconds: number;
  /** Stops the sidecar (SIGTERM) and nginx; resolves with the sidecar's exit. */
  stop(): Promise<Exit>;
}

/** The chart values of one played pod: its loopback addresses and ports, its files under dir. */
function podValues(o: PodSpecOptions, dir: string, tokenApiPort: number): Record<string, unknown> {
  return {
    nginx: {
      loadModules: DEBIAN_NGINX_MODULES,
      confDir: join(dir, 'etc-apigw'),
      runDir: join(dir, 'run'),
      listenAddress: o.ip,
      port: o.nginxPort,
      probePort: o.probePort,
      apiPort: tokenApiPort,
      policy: o.policy ?? 'wait-strict',
      ...(o.preStopSleepSeconds === undefined ? {} : { preStopSleepSeconds: o.preStopSleepSeconds }),
    },
    syncer: {
      nativeSidecar: o.nativeSidecar ?? false,
      ...(o.syncerPreStopSeconds === undefined ? {} : { preStopSeconds: o.syncerPreStopSeconds }),
      discovery: 'static',
      opsPort: o.opsPort,
      // info: the "listening" line shows in a start-up failure's output.
      logLevel: 'info',
      config: {
        listenAddr: `${o.ip}:${o.apiPort}`,
        opsAddr: `${o.ip}:${o.opsPort}`,
        peers: o.peers,
        // Short enough that a not-yet-replicated token answers quickly in the test.
        hardTimeoutMs: 600,
        retryDelayMs: 5,
        retryMaxDelayMs: 50,
      },
    },
  };
}

/** Renders the chart for one pod, lays out its volumes in a temp dir, starts both containers. */
export async function startPod(o: PodSpecOptions): Promise<SimPod> {
  const dir = mkdtempSync(join(tmpdir(), `apigw-pod-${o.name}-`));
  // Run as root, nginx's workers drop to "nobody" (in the pod they run as the pod's UID):
  // they must traverse to the config and the html root.
  chmodSync(dir, 0o755);
  const tokenApiPort = await freePort();
  const values = podValues(o, dir, tokenApiPort);
  const objects = await render({ values });
  materializeConfigMaps(objects);
  makeEmptyDirs(objects);
  const fields = { 'metadata.name': o.name, 'metadata.namespace': 'apigw', 'status.podIP': o.ip };

  // The syncer container has no command: the image's ENTRYPOINT runs, from its WORKDIR.
  const dockerfile = readFileSync(join(repoRoot(), 'Dockerfile'), 'utf8');
  const argv = imageArgv(runtimeSpec(dockerfile));
  const workdir = imageAppDir(dockerfile, repoRoot());
  // Both containers start now: nginx answers within 30 s of it, the sidecar is ready within 30 s after.
  const nginxUp = deadline(30_000);
  const nginxSpec = container(objects, 'nginx');
  const syncerSpec = container(objects, 'syncer');
  const syncerEnv = resolveEnv(syncerSpec, fields);
  const nginx = runContainer(nginxSpec, fields);
  let syncer: SidecarProcess;
  try {
    syncer = await startSidecarProcess(syncerEnv, { argv, cwd: workdir, bareEnv: true, timeoutMs: 30_000 });
  } catch (err) {
    await nginx.stop(10_000);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n---\n${nginx.output()}`);
  }
  const pod: SimPod = {
    name: o.name,
    base: `http://${o.ip}:${o.nginxPort}`,
    probeBase: `http://${o.ip}:${o.probePort}`,
    tokenApi: `http://127.0.0.1:${tokenApiPort}`,
    ops: `http://${o.ip}:${o.opsPort}`,
    nginx,
    syncer,
    values,
    gracePeriodSeconds: podSpec(objects).terminationGracePeriodSeconds ?? 30,
    containers: [
      { spec: nginxSpec, native: false, process: nginx, env: resolveEnv(nginxSpec, fields) },
      { spec: syncerSpec, native: syncerSpec.restartPolicy === 'Always', process: syncer.process, env: syncerEnv },
    ],
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

/** Starts several pods; if one fails, stops the others before rethrowing. */
export async function startPods(specs: readonly PodSpecOptions[]): Promise<SimPod[]> {
  const results = await Promise.allSettled(specs.map((s) => startPod(s)));
  const pods = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(pods.map((p) => p.stop()));
    throw failed.reason;
  }
  return pods;
}
