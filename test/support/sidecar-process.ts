// Runs the BUILT sidecar (dist/sidecar/main.js) as a child process, the way a container runs it,
// and reads its JSON log lines to learn its listeners and follow what it does.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { sendCheck, type CheckReply } from './sidecar-app.js';
import { waitFor } from './wait.js';

export const MAIN_JS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'sidecar', 'main.js');

export type LogLine = Record<string, unknown>;

export interface SidecarProcess {
  readonly child: ChildProcess;
  readonly apiUrl: string;
  readonly opsUrl: string;
  /** Parsed stdout log lines, in order, growing while the process runs. */
  readonly lines: LogLine[];
  stderr(): string;
  readonly exited: Promise<number | null>;
  check(token: string, origin?: string): Promise<CheckReply>;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => running.forEach((c) => c.kill('SIGKILL')));

/** Starts the sidecar with `env` (listeners default to free ports) and waits for its 'listening' line. */
export async function startSidecarProcess(env: Readonly<Record<string, string>>, timeoutMs = 30_000): Promise<SidecarProcess> {
  const child = spawn(process.execPath, [MAIN_JS], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SYNCER_LISTEN_ADDR: '127.0.0.1:0', SYNCER_OPS_ADDR: '127.0.0.1:0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const exited = once(child, 'exit').then(([code]) => {
    running.delete(child);
    return code as number | null;
  });
  const lines: LogLine[] = [];
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      lines.push({ msg: line });
    }
  });
  const listening = (): LogLine | undefined => lines.find((l) => l['msg'] === 'listening');
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`sidecar exited with ${child.exitCode}: ${stderr}`);
    return listening() !== undefined;
  }, 'the sidecar to listen', { timeoutMs }).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  const at = listening()!;
  const apiUrl = `http://${String(at['api'])}`;
  return {
    child,
    apiUrl,
    opsUrl: `http://${String(at['ops'])}`,
    lines,
    stderr: () => stderr,
    exited,
    check: (token, origin) => sendCheck(apiUrl, origin === undefined ? { 'X-Auth-Token': token } : { 'X-Auth-Token': token, 'X-Nginx-Origin': origin }),
    stop: (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
