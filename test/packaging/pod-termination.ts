// Terminates a played pod (pod-sim.ts, nginx-pods.ts) the way the kubelet does
// (pkg/kubelet/kuberuntime: killContainersWithSyncResult, killContainer):
//  - the app containers all at once, each on its own: its preStop hook runs (bounded by the
//    grace period), then the container gets SIGTERM and what is left of the grace period, but
//    at least minimumGracePeriodInSeconds (2 s), before SIGKILL;
//  - a container played in a PID namespace of its own (pod-sim.ts) as a runtime does it: an
//    exec hook runs inside that namespace (nsenter), so it dies with the container's PID 1
//    (an exit code other than 0 is the kubelet's "PreStopHook failed"); the stop signal goes to
//    PID 1 alone (the runtime's StopContainer), SIGKILL at the end to everything;
//  - native sidecars (initContainers with restartPolicy Always) only once every app container
//    has exited, the last started first, each the same way with what is left of the grace period.
// The record of what happened when lets a test relate a client's answers to the shutdown order.
import type { V1Container, V1LifecycleHandler } from '@kubernetes/client-node';
import { performance } from 'node:perf_hooks';
import { describeExit, killGroup, runTracked, withPath, type Exit, type TrackedProcess } from '../support/processes.js';
import { sleep } from '../support/wait.js';

/** kubelet's floor for the time between SIGTERM and SIGKILL. */
const MINIMUM_GRACE_MS = 2_000;

export interface RunningContainer {
  readonly spec: V1Container;
  /** An initContainer with restartPolicy Always. */
  readonly native: boolean;
  readonly process: TrackedProcess;
  /** The host's pid of the container's PID 1 when it runs in a PID namespace of its own. */
  readonly init?: number;
  /** The container's environment, for exec hooks (they run inside the container). */
  readonly env: Readonly<Record<string, string>>;
  /** The argv of a command run inside the container (its pod's network namespace). */
  readonly within: (argv: readonly string[]) => string[];
}

export type TerminationStep = 'preStop started' | 'preStop ended' | 'SIGTERM' | 'exited';

export interface TerminationEvent {
  readonly container: string;
  readonly step: TerminationStep;
  /** Milliseconds since the pod's termination began. */
  readonly atMs: number;
  readonly detail?: string;
}

export interface Termination {
  /** performance.now() when the termination began. */
  readonly startedAt: number;
  readonly events: readonly TerminationEvent[];
  /** When `container` went through `step` (ms since the start); throws if it did not. */
  at(container: string, step: TerminationStep): number;
}

/** Runs a preStop handler as the kubelet would; resolves when it ends or the grace period does. */
async function runPreStop(c: RunningContainer, handler: V1LifecycleHandler, remainingMs: number): Promise<string> {
  if (handler.exec?.command !== undefined) {
    const [command, ...args] = handler.exec.command;
    if (command === undefined) throw new Error(`${c.spec.name}: empty preStop exec command`);
    // Inside the container's PID namespace (nsenter forks into it), as the runtime's exec does,
    // and in the pod's network namespace.
    const argv = c.within(c.init === undefined ? [command, ...args] : ['nsenter', '--target', String(c.init), '--pid', '--', command, ...args]);
    const r = await runTracked(argv[0] ?? command, argv.slice(1), { env: withPath(c.env), timeoutMs: remainingMs });
    // Its output matters only when it failed (nginx -s quit always prints a notice).
    return `exec ${describeExit(r.exit)}${r.exit.code === 0 ? '' : `: ${r.stderr.trim()}`}`;
  }
  if (handler.sleep !== undefined) {
    await sleep(Math.min(handler.sleep.seconds * 1_000, remainingMs));
    return `sleep ${handler.sleep.seconds} s`;
  }
  throw new Error(`${c.spec.name}: preStop handler ${JSON.stringify(handler)} is not played here (exec and sleep are)`);
}

/** SIGTERM to the container's PID 1 (its whole process group when it has no namespace of its own), SIGKILL to everything after graceMs. */
async function stopContainer(c: RunningContainer, graceMs: number): Promise<Exit> {
  if (c.init === undefined) return c.process.stop(graceMs, 'SIGTERM');
  try {
    process.kill(c.init, 'SIGTERM');
  } catch {
    // ESRCH: PID 1 has exited already.
  }
  const timer = setTimeout(() => killGroup(c.process.pid, 'SIGKILL'), graceMs);
  try {
    return await c.process.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Terminates the pod's containers within gracePeriodSeconds; resolves once all have exited. */
export async function terminatePod(containers: readonly RunningContainer[], gracePeriodSeconds: number): Promise<Termination> {
  const startedAt = performance.now();
  const deadline = startedAt + gracePeriodSeconds * 1_000;
  const events: TerminationEvent[] = [];
  const note = (container: string, step: TerminationStep, detail?: string): void => {
    events.push({ container, step, atMs: performance.now() - startedAt, ...(detail === undefined ? {} : { detail }) });
  };

  const kill = async (c: RunningContainer): Promise<void> => {
    const name = c.spec.name;
    const preStop = c.spec.lifecycle?.preStop;
    if (preStop !== undefined && c.process.exitStatus() === undefined) {
      note(name, 'preStop started');
      note(name, 'preStop ended', await runPreStop(c, preStop, Math.max(0, deadline - performance.now())));
    }
    note(name, 'SIGTERM');
    const exit = await stopContainer(c, Math.max(MINIMUM_GRACE_MS, deadline - performance.now()));
    note(name, 'exited', describeExit(exit));
  };

  await Promise.all(containers.filter((c) => !c.native).map(kill));
  for (const sidecar of containers.filter((c) => c.native).reverse()) await kill(sidecar);

  return {
    startedAt,
    events,
    at(container, step) {
      const found = events.find((e) => e.container === container && e.step === step);
      if (found === undefined) throw new Error(`${container} never reached "${step}": ${JSON.stringify(events)}`);
      return found.atMs;
    },
  };
}
