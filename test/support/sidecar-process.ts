// Runs the BUILT sidecar (the bundle, dist/bundle/apigw-syncer.mjs) as a child process, the way a container runs it,
// and reads its JSON log lines to learn its listeners and follow what it does. Every test that
// starts the built program goes through here; the processes themselves through processes.ts.
import { type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { collectOutput, describeExit, runTracked, spawnTracked, withPath, type CommandResult, type Exit, type TrackedProcess } from './processes.js';
import { repoRoot } from './repo-root.js';
import { sendCheck, type CheckReply } from './sidecar-app.js';
import { waitFor } from './wait.js';

/** The program as shipped: esbuild's bundle of sidecar/main.ts (`npm run build`), what the image copies and runs. */
export const MAIN_JS = join(repoRoot(), 'dist', 'bundle', 'apigw-syncer.mjs');

/**
 * The command line that runs `command args` with exactly the NODE_OPTIONS `env` gives it. Under
 * tap, @tapjs/processinfo adds its --import (with --enable-source-maps) to NODE_OPTIONS of every
 * process a test spawns, whatever env the test passes (spawn-opts.js); that loader reads the
 * source map of every module the child loads: a sidecar in kubernetes mode then holds ~300 MB
 * more, and every start is slower. coreutils' env sets the variable back and execs the program,
 * which keeps the pid the test watches.
 */
export function asLaunched(command: string, args: readonly string[], env: Readonly<Record<string, string>>): [string, string[]] {
  const intended = env['NODE_OPTIONS'];
  const set = intended === undefined ? ['-u', 'NODE_OPTIONS'] : [`NODE_OPTIONS=${intended}`];
  return ['/usr/bin/env', [...set, command, ...args]];
}

export type LogLine = Record<string, unknown>;

export interface SidecarRunOptions {
  /** The program's command line (default: this node on MAIN_JS), e.g. the image's ENTRYPOINT + CMD. */
  readonly argv?: readonly string[];
  /** Working directory (the image's WORKDIR when argv is relative to it). */
  readonly cwd?: string;
}

export interface SidecarProcessOptions extends SidecarRunOptions {
  /** Deadline for the 'listening' log line (default 30 000 ms). */
  readonly timeoutMs?: number;
  /**
   * The environment is `env` plus PATH, as a container's, without the test default of
   * listeners on free 127.0.0.1 ports.
   */
  readonly bareEnv?: boolean;
}

export interface SidecarProcess {
  readonly child: ChildProcess;
  readonly process: TrackedProcess;
  /** http://host:port of the check API and of the ops listener, from the 'listening' line. */
  readonly apiUrl: string;
  readonly opsUrl: string;
  /** Parsed stdout log lines, in order, growing while the process runs (non-JSON lines as { msg }). */
  readonly lines: LogLine[];
  stderr(): string;
  /** Everything written so far: stdout, then stderr. */
  output(): string;
  /** The exit code (null if killed by a signal), once the process has exited and its output is read. */
  readonly exited: PromiseLike<number | null>;
  check(token: string, origin?: string): Promise<CheckReply>;
  /** Sends `signal` (SIGKILL after graceMs) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
}

/**
 * Starts the sidecar with `env` (listeners default to free 127.0.0.1 ports unless env or
 * bareEnv says otherwise) and waits for its 'listening' line.
 */
export async function startSidecarProcess(env: Readonly<Record<string, string>>, opts: SidecarProcessOptions = {}): Promise<SidecarProcess> {
  const { timeoutMs = 30_000, bareEnv = false } = opts;
  const [command, ...args] = opts.argv ?? [process.execPath, MAIN_JS];
  if (command === undefined) throw new Error('empty argv');
  const fullEnv = withPath(bareEnv ? env : { SYNCER_LISTEN_ADDR: '127.0.0.1:0', SYNCER_OPS_ADDR: '127.0.0.1:0', ...env });
  const proc = spawnTracked(...asLaunched(command, args, fullEnv), {
    env: fullEnv,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { closed, stdout, stderr } = collectOutput(proc.child);
  const lines: LogLine[] = [];
  createInterface({ input: proc.child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      lines.push({ msg: line });
    }
  });
  const at = await waitFor(() => lines.find((l) => l['msg'] === 'listening'), 'the sidecar to listen', {
    timeoutMs,
    abortIf: () => {
      const exit = proc.exitStatus();
      return exit === undefined ? undefined : new Error(`sidecar ${describeExit(exit)} before listening`);
    },
  }).catch(async (err: unknown) => {
    await proc.stop(1_000, 'SIGKILL');
    await closed;
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nstderr: ${stderr()}\nstdout: ${stdout()}`);
  });
  const apiUrl = `http://${String(at['api'])}`;
  const code = (exit: Exit): Promise<number | null> => closed.then(() => exit.code);
  return {
    child: proc.child,
    process: proc,
    apiUrl,
    opsUrl: `http://${String(at['ops'])}`,
    lines,
    stderr,
    output: () => stdout() + stderr(),
    exited: { then: (onFulfilled, onRejected) => proc.exited.then(code).then(onFulfilled, onRejected) },
    check: (token, origin) => sendCheck(apiUrl, origin === undefined ? { 'X-Auth-Token': token } : { 'X-Auth-Token': token, 'X-Nginx-Origin': origin }),
    stop: async (signal = 'SIGTERM', graceMs = 10_000) => code(await proc.stop(graceMs, signal)),
  };
}

export interface SidecarCommandOptions extends SidecarRunOptions {
  /** Stop it (SIGTERM, then SIGKILL) if it has not exited by then; default: no deadline. */
  readonly timeoutMs?: number;
}

/** Runs the program once to completion (`peers`, a bad configuration…) with `env` plus PATH. */
export function runSidecarCommand(args: readonly string[], env: Readonly<Record<string, string>>, opts: SidecarCommandOptions = {}): Promise<CommandResult> {
  const [command, ...base] = opts.argv ?? [process.execPath, MAIN_JS];
  if (command === undefined) throw new Error('empty argv');
  return runTracked(...asLaunched(command, [...base, ...args], env), { env: withPath(env), cwd: opts.cwd, timeoutMs: opts.timeoutMs });
}
