// Plays one apigw pod of a rendered chart on this machine, without a container runtime:
// the nginx ConfigMap is written where the Deployment mounts it (volume items → paths), and
// each container runs the command and environment the Deployment gives it, as PID 1 of a PID
// namespace of its own (`unshare --pid --fork`, root), as a runtime starts it: PID 1 is what
// the stop signal reaches, and when it exits the kernel kills whatever is left in the
// namespace, exec'd hooks included. The chart is rendered with confDir/runDir in a temp dir and
// loopback listen addresses, so the only difference from a pod is the filesystem root (and the
// network namespace, shared here).
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { V1Container } from '@kubernetes/client-node';
import type { KubeObject } from './helm.js';
import { allContainers, only, podSpec, resolveEnv } from './k8s-objects.js';
import { describeExit, onExitCleanup, spawnTracked, withPath, type TrackedProcess } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

/** Writes every configMap volume's items under their mountPath; returns the written paths. */
export function materializeConfigMaps(objects: readonly KubeObject[]): string[] {
  const spec = podSpec(objects);
  const cm = only(objects, 'ConfigMap');
  const written: string[] = [];
  for (const volume of spec.volumes ?? []) {
    if (volume.configMap === undefined) continue;
    if (volume.configMap.name !== cm.metadata?.name) throw new Error(`volume ${volume.name} uses ConfigMap ${volume.configMap.name}, not the rendered ${cm.metadata?.name}`);
    const mounts = spec.containers.flatMap((c) => (c.volumeMounts ?? []).filter((m) => m.name === volume.name));
    for (const mount of mounts) {
      for (const item of volume.configMap.items ?? []) {
        const content = cm.data?.[item.key];
        if (content === undefined) throw new Error(`volume item ${item.path}: key ${item.key} is not in the ConfigMap`);
        const path = join(mount.mountPath, item.path);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, content);
        written.push(path);
      }
    }
  }
  return written;
}

/** Creates every emptyDir's mount directory. */
export function makeEmptyDirs(objects: readonly KubeObject[]): void {
  const spec = podSpec(objects);
  const emptyDirs = new Set((spec.volumes ?? []).filter((v) => v.emptyDir !== undefined).map((v) => v.name));
  for (const { container } of allContainers(spec).values()) {
    for (const m of container.volumeMounts ?? []) if (emptyDirs.has(m.name)) mkdirSync(m.mountPath, { recursive: true });
  }
}

export function container(objects: readonly KubeObject[], name: string): V1Container {
  const found = allContainers(podSpec(objects)).get(name);
  if (!found) throw new Error(`no container ${name} in the pod spec`);
  return found.container;
}

/** A running container: its tracked process, and its output so far. */
export interface Started extends TrackedProcess {
  readonly output: () => string;
}

/** A container started as PID 1 of its own PID namespace. */
export interface StartedContainer extends Started {
  /** The host's pid of the container's PID 1 (the tracked process is `unshare`, its parent). */
  readonly init: number;
}

// Process logs outlive their processes (callers read them after exit): removed at exit.
const logDirs = new Set<string>();
let logCleanup: (() => void) | undefined;

/**
 * Runs argv with exactly the given environment (plus PATH). stdout+stderr go to a log file,
 * as a container runtime's do: nginx opens /dev/stdout itself, which fails on the socket
 * pairs Node uses for piped stdio (ENXIO) but works on a file, as on a pod's pipe.
 */
function run(argv: readonly string[], env: Readonly<Record<string, string>>): Started {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('empty command');
  logCleanup ??= onExitCleanup(() => logDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const logDir = mkdtempSync(join(tmpdir(), 'apigw-proc-'));
  logDirs.add(logDir);
  const logFile = join(logDir, 'output.log');
  const fd = openSync(logFile, 'a');
  let proc: TrackedProcess;
  try {
    proc = spawnTracked(cmd, args, { env: withPath(env), stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const output = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  return { ...proc, output };
}

/** A container's command + args, as the kubelet would exec them (no image ENTRYPOINT involved). */
export function containerArgv(c: V1Container): string[] {
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  if (argv.length === 0) throw new Error(`container ${c.name} has no command: it relies on the image's ENTRYPOINT`);
  return argv;
}

/** The only child of `pid`, once it has forked (unshare --fork's). */
async function onlyChild(pid: number, proc: TrackedProcess): Promise<number> {
  return waitFor(
    () => {
      let children: string;
      try {
        children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
      } catch {
        return undefined;
      }
      return children === '' ? undefined : Number(children.split(' ')[0]);
    },
    `the first process of ${pid}'s PID namespace`,
    { timeoutMs: 5_000, intervalMs: 2, abortIf: () => (proc.exitStatus() === undefined ? undefined : new Error(`unshare ${describeExit(proc.exitStatus() ?? { code: null, signal: null })}`)) },
  );
}

/**
 * Runs a container of the rendered pod with its rendered env, the pod fields filling fieldRefs,
 * as PID 1 of a new PID namespace (--kill-child: it dies with unshare, which the harness tracks);
 * `within` prefixes the command (`ip netns exec <pod>`, which execs: the pod's network namespace).
 */
export async function runContainer(
  c: V1Container,
  fields: Readonly<Record<string, string>>,
  within: (argv: readonly string[]) => string[] = (argv) => [...argv],
): Promise<StartedContainer> {
  const started = run(within(['unshare', '--pid', '--fork', '--kill-child', '--', ...containerArgv(c)]), resolveEnv(c, fields));
  try {
    return { ...started, init: await onlyChild(started.pid, started) };
  } catch (err) {
    await started.stop(1_000);
    throw new Error(`${c.name} did not start in a PID namespace of its own (unshare needs root): ${err instanceof Error ? err.message : String(err)}\n${started.output()}`);
  }
}
