// One HTTP(S) request made from inside a simulated pod (`ip netns exec <pod> node pod-request.js
// '<json>'`, pod-network.ts): to the pod's own loopback, where the token API listens and where a
// mesh's sidecar would connect from. As a script it prints {"status", "body"} as JSON, or
// {"error"} when the request failed; inPod runs it in a pod and parses that.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { http } from './net.js';
import { execTracked } from './processes.js';
import { podArgv, type PodNetns } from './pod-network.js';

export interface PodRequest {
  readonly url: string;
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** https: paths of PEM files of the CA to trust, of a client certificate and its key, and the name to check. */
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly servername?: string;
}

export type PodAnswer = { readonly status: number; readonly body: string } | { readonly error: string };

async function send(r: PodRequest): Promise<PodAnswer> {
  const file = (path: string | undefined): Buffer | undefined => (path === undefined ? undefined : readFileSync(path));
  try {
    const res = await http(r.url, { method: r.method, headers: r.headers, body: r.body, tls: { ca: file(r.ca), cert: file(r.cert), key: file(r.key), servername: r.servername } });
    return { status: res.status, body: res.body };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err)) };
  }
}

const SCRIPT = fileURLToPath(import.meta.url);

/** Makes the request from inside the pod's network namespace. */
export async function inPod(pod: PodNetns, r: PodRequest): Promise<PodAnswer> {
  // Without tap's NODE_OPTIONS (its loader instruments every node a test starts): a plain, quick node.
  const [cmd, ...args] = podArgv(pod, ['/usr/bin/env', '-u', 'NODE_OPTIONS', process.execPath, SCRIPT, JSON.stringify(r)]);
  const { stdout } = await execTracked(cmd ?? '', args);
  return JSON.parse(stdout) as PodAnswer;
}

/** The status of an answer; throws with the error when there was none. */
export function statusOf(answer: PodAnswer): number {
  if ('error' in answer) throw new Error(`no answer: ${answer.error}`);
  return answer.status;
}

if (process.argv[1] === SCRIPT && process.argv[2] !== undefined) {
  process.stdout.write(JSON.stringify(await send(JSON.parse(process.argv[2]) as PodRequest)));
}
