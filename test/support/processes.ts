// Child processes that never outlive the test process. Each child runs as the leader of its
// own process group (so nginx's workers go with their master, a node's children with it) and
// is killed on 'exit'/SIGINT/SIGTERM/SIGHUP. A watchdog `bash` also holds a pipe from us: if
// we die in a way no hook sees (SIGKILL by a test runner's timeout), the pipe closes, `read`
// returns, and the watchdog kills the group.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { Socket } from 'node:net';

export interface TrackedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM the group, SIGKILL it after graceMs; resolves once the leader has exited. */
  stop(graceMs?: number): Promise<number | string>;
}

const live = new Map<number, ChildProcess>();
let hooksInstalled = false;

/** Sends `signal` to the whole process group led by `pid` (SIGSTOP/SIGCONT freeze and thaw it). */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function killAllNow(): void {
  for (const pid of live.keys()) killGroup(pid, 'SIGKILL');
  live.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllNow();
      // Keep the signal's usual effect (death) unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

function startWatchdog(pid: number): ChildProcess {
  // bash, not sh: dash's kill builtin does not take a negative pid (a process group).
  const dog = spawn('/bin/bash', ['-c', `read -r _ignored; kill -KILL -- -${pid} 2>/dev/null; exit 0`], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  dog.on('error', () => undefined);
  dog.unref();
  // Neither the watchdog nor its pipe may keep our event loop alive.
  if (dog.stdin instanceof Socket) dog.stdin.unref();
  return dog;
}

/** Spawns `command` as the leader of a new process group and tracks it (see above). */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): TrackedProcess {
  installHooks();
  const child = spawn(command, args, { ...options, detached: true });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${command}`);
  live.set(pid, child);
  const dog = startWatchdog(pid);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(pid);
      // Workers of a dead master, grandchildren of a dead node: nothing of the group stays.
      killGroup(pid, 'SIGKILL');
      // Release the watchdog now, while the group id cannot have been reused yet.
      dog.stdin?.end();
      resolve(code ?? signal ?? 'unknown');
    });
  });
  // A forgotten child must not keep the test process alive; the 'exit' hook still kills it.
  child.unref();
  const stop = async (graceMs = 3_000): Promise<number | string> => {
    if (live.has(pid)) {
      killGroup(pid, 'SIGTERM');
      // A frozen group (SIGSTOP) would only see the SIGTERM once thawed.
      killGroup(pid, 'SIGCONT');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    }
    return exited;
  };
  return { child, pid, exited, stop };
}

/** Pids of tracked process groups still running (tests assert cleanup with it). */
export function livePids(): number[] {
  return [...live.keys()];
}
