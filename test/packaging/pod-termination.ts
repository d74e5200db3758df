// Terminates a played pod (pod-sim.ts, nginx-pods.ts) the way the kubelet does
// (pkg/kubelet/kuberuntime: killContainersWithSyncResult, killContainer):
//  - the app containers all at once, each on its own: its preStop hook runs (bounded by the
//    grace period), then the container gets SIGTERM and what is left of the grace period, but
//    at least minimumGracePeriodInSeconds (2 s), before SIGKILL;
//  - native sidecars (initContainers with restartPolicy Always) only once every app container
//    has exited, the last started first, each the same way with what is left of the grace period.
// The record of what happened when lets a test relate a client's answers to the shutdown order.
import type { V1Container, V1LifecycleHandler } from '@kubernetes/client-node';
import { performance } from 'node:perf_hooks';
import { describeExit, runTracked, withPath, type TrackedProcess } from '../support/processes.js';
import { sleep } from '../support/wait.js';

/** kubelet's floor for the time between SIGTERM and SIGKILL. */
const MINIMUM_GRACE_MS = 2_000;

export interface RunningContainer {
  readonly spec: V1Container;
  /** An initContainer with restartPolicy Always. */
  readonly native: boolean;
  readonly process: TrackedProcess;
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
    const [command, ...args] = c.within(handler.exec.command);
    if (command === undefined || handler.exec.command.length === 0) throw new Error(`${c.spec.name}: empty preStop exec command`);
    const r = await runTracked(command, args, { env: withPath(c.env), timeoutMs: remainingMs });
    // Its output matters only when it failed (nginx -s quit always prints a notice).
    return `exec ${describeExit(r.exit)}${r.exit.code === 0 ? '' : `: ${r.stderr.trim()}`}`;
  }
  if (handler.sleep !== undefined) {
    await sleep(Math.min(handler.sleep.seconds * 1_000, remainingMs));
    return `sleep ${handler.sleep.seconds} s`;
  }
  throw new Error(`${c.spec.name}: preStop handler ${JSON.stringify(handler)} is not played here (exec and sleep are)`);
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
    const exit = await c.process.stop(Math.max(MINIMUM_GRACE_MS, deadline - performance.now()), 'SIGTERM');
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
