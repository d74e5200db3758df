// Child processes that never outlive the test process. Every child of the test harnesses is
// started here. Each runs as the leader of its own process group (so nginx's workers go with
// their master, a node's children with it) and is killed:
//  - from 'exit' and SIGINT/SIGTERM/SIGHUP handlers (the whole group, SIGKILL);
//  - by the kernel, through `setpriv --pdeathsig KILL` (when installed), if this process dies
//    in a way no handler sees (SIGKILL by a test runner's timeout): the group leader gets
//    SIGKILL the moment its parent is gone;
//  - by a watchdog `bash` holding a pipe from us: when we die, the pipe closes, `read` returns
//    and the watchdog kills the rest of the group (pdeathsig reaches the leader only).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { Socket } from 'node:net';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface TrackedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /**
   * Settles with the exit once the process has exited. Awaiting it (any `then`) keeps this
   * process alive until then; a child nobody waits for does not (see spawnTracked).
   */
  readonly exited: PromiseLike<Exit>;
  /** The exit if the process has exited, undefined while it runs (for abort checks). */
  exitStatus(): Exit | undefined;
  /** Sends `signal` to the group (SIGCONT too, to reach a frozen group), SIGKILL after graceMs; resolves once the leader has exited. */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<Exit>;
}

/** "exited with code 0", "killed by SIGTERM": for error messages. */
export function describeExit(exit: Exit): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${String(exit.code)}`;
}

const live = new Map<number, ChildProcess>();
const cleanups = new Set<() => void>();
let hooksInstalled = false;

/** Sends `signal` to the whole process group led by `pid` (SIGSTOP/SIGCONT freeze and thaw it). */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function cleanUpNow(): void {
  for (const pid of live.keys()) killGroup(pid, 'SIGKILL');
  live.clear();
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      // Best effort at exit.
    }
  }
  cleanups.clear();
}

const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanUpNow);
  for (const signal of Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]) {
    process.once(signal, () => {
      cleanUpNow();
      const status = 128 + SIGNALS[signal];
      // Alone, end the process as the default action would (re-raising the signal from inside
      // its handler did not reliably terminate Node 20). With other handlers (tap's), let them
      // run, but make sure the process does end.
      if (process.listenerCount(signal) === 0) process.exit(status);
      else setTimeout(() => process.exit(status), 2_000).unref();
    });
  }
}

/**
 * Runs `fn` (synchronous) once when this process exits or dies of SIGINT/SIGTERM/SIGHUP, after
 * the tracked children are killed: for files they leave behind. Returns what unregisters it.
 */
export function onExitCleanup(fn: () => void): () => void {
  installHooks();
  cleanups.add(fn);
  return () => void cleanups.delete(fn);
}

/** `env` plus this process's PATH: the whole environment of a child that must not see ours (a container's). */
export function withPath(env: Readonly<Record<string, string>>): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env };
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

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

/**
 * Spawns `command` as the leader of a new process group and tracks it (see above). The child
 * does not keep the test process alive by itself (a forgotten one is killed at exit); awaiting
 * `exited` or `stop()` does. Its stdio are the caller's choice (pipes keep the loop alive while
 * open, as usual).
 */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): TrackedProcess {
  installHooks();
  const [cmd, argv] = SETPRIV === undefined ? [command, args] : [SETPRIV, ['--pdeathsig', 'KILL', '--', command, ...args]];
  const child = spawn(cmd, argv, { ...options, detached: true });
  // A failed spawn also emits 'error' (later): it must not become an uncaught exception.
  child.on('error', () => undefined);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${command}`);
  live.set(pid, child);
  const dog = startWatchdog(pid);
  let status: Exit | undefined;
  const settled = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(pid);
      // Workers of a dead master, grandchildren of a dead node: nothing of the group stays.
      killGroup(pid, 'SIGKILL');
      // Release the watchdog now, while the group id cannot have been reused yet.
      dog.stdin?.end();
      status = { code, signal };
      resolve(status);
    });
  });
  // A forgotten child must not keep the test process alive; the 'exit' hook still kills it.
  child.unref();
  const exited: PromiseLike<Exit> = {
    then(onFulfilled, onRejected) {
      // Someone waits for this exit: the event loop must wait for it too.
      if (status === undefined) child.ref();
      return settled.then(onFulfilled, onRejected);
    },
  };
  const stop = async (graceMs = 3_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> => {
    if (status !== undefined) return status;
    killGroup(pid, signal);
    // A frozen group (SIGSTOP) would only see the signal once thawed.
    killGroup(pid, 'SIGCONT');
    const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };
  return { child, pid, exited, exitStatus: () => status, stop };
}

/** Pids of tracked process groups still running (tests assert cleanup with it). */
export function livePids(): number[] {
  return [...live.keys()];
}

export interface CollectedOutput {
  /** Settles once stdout and stderr are read to the end ('exit' may come before that). */
  readonly closed: Promise<unknown>;
  readonly stdout: () => string;
  readonly stderr: () => string;
}

/** Collects a child's piped stdout and stderr as text. */
export function collectOutput(child: ChildProcess): CollectedOutput {
  // 'error' after a successful spawn (a failed kill) must not become an unhandled rejection.
  const closed = once(child, 'close').catch(() => undefined);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return { closed, stdout: () => stdout, stderr: () => stderr };
}

export interface CommandResult {
  readonly exit: Exit;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CommandOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Stop it (SIGTERM, SIGKILL after 3 s) if it has not exited by then; default: no deadline. */
  readonly timeoutMs?: number;
}

/** Runs a command to completion (tracked like any child) and resolves with its exit and output, whatever the exit. */
export async function runTracked(command: string, args: readonly string[], opts: CommandOptions = {}): Promise<CommandResult> {
  const proc = spawnTracked(command, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collectOutput(proc.child);
  const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => void proc.stop(), opts.timeoutMs);
  try {
    const exit = await proc.exited;
    await output.closed;
    return { exit, stdout: output.stdout(), stderr: output.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

/** A command that did not exit 0 (execTracked). */
export class CommandFailed extends Error {
  override name = 'CommandFailed';
  constructor(
    readonly command: string,
    readonly result: CommandResult,
  ) {
    super(`${command} ${describeExit(result.exit)}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

/** Like runTracked, but rejects with CommandFailed unless the command exits 0 (as execFile does). */
export async function execTracked(command: string, args: readonly string[], opts: CommandOptions = {}): Promise<CommandResult> {
  const result = await runTracked(command, args, opts);
  if (result.exit.code !== 0) throw new CommandFailed([command, ...args].join(' '), result);
  return result;
}
