// An in-process API server the test scripts request by request (no network; pair it with
// ManualClock): lists and readiness polls take their answers from queues (a list with no queued
// answer is held until the test answers it), watches are handles the test opens, feeds, closes
// or fails. Every request is recorded with its query.
import { KubeApiError, type KubeHttp, type Query } from '../../sidecar/discovery/kubernetes/kube-http.js';
import { podJson } from './discovery-harness.js';

export interface WatchHandle {
  readonly path: string;
  readonly query: Query;
  open(): void;
  send(type: string, object: unknown): void;
  close(): void;
  fail(err: Error): void;
  readonly aborted: boolean;
}

/** A list request waiting for the test's answer. */
export interface HeldList {
  readonly path: string;
  readonly query: Query;
  answer(body: unknown): void;
  fail(err: Error): void;
}

export class ScriptedApi implements KubeHttp {
  readonly lists: Query[] = [];
  readonly watches: WatchHandle[] = [];
  /** Answers for the next lists, in order; an Error rejects. When empty, a list is held (heldLists) until answered or aborted. */
  readonly listAnswers: (unknown | Error)[] = [];
  /** Lists that found no queued answer, oldest first; answering one removes it. */
  readonly heldLists: HeldList[] = [];
  /** Paths of every getStatus call (the readiness poll). */
  readonly statusCalls: string[] = [];
  /** Answers for the next getStatus calls: a status, or an Error to reject with. When empty, the call hangs until aborted. */
  readonly statusAnswers: (number | Error)[] = [];

  getJson(path: string, query: Query, signal: AbortSignal): Promise<unknown> {
    this.lists.push(query);
    const queued = this.listAnswers.shift();
    if (queued !== undefined) return answerOrHang(queued, signal);
    return new Promise((resolve, reject) => {
      const held: HeldList = {
        path,
        query,
        answer: (body) => (this.release(held), resolve(body)),
        fail: (err) => (this.release(held), reject(err)),
      };
      signal.addEventListener('abort', () => held.fail(aborted(signal)));
      this.heldLists.push(held);
    });
  }

  /** The held list of the collection whose path ends with `suffix`; throws if there is none. */
  heldList(suffix: string): HeldList {
    const held = this.heldLists.find((l) => l.path.endsWith(suffix));
    if (held === undefined) throw new Error(`no list of …${suffix} is waiting (held: ${this.heldLists.map((l) => l.path).join(', ') || 'none'})`);
    return held;
  }

  private release(held: HeldList): void {
    const i = this.heldLists.indexOf(held);
    if (i >= 0) this.heldLists.splice(i, 1);
  }

  getStatus(path: string, signal: AbortSignal): Promise<number> {
    this.statusCalls.push(path);
    return answerOrHang(this.statusAnswers.shift(), signal);
  }

  watch(path: string, query: Query, signal: AbortSignal, onOpen: () => void, onEvent: (event: unknown) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        if (err) reject(err);
        else resolve();
      };
      signal.addEventListener('abort', () => {
        handle.aborted = true;
        finish(aborted(signal));
      });
      const handle = {
        path,
        query,
        aborted: false,
        open: () => onOpen(),
        send: (type: string, object: unknown) => {
          try {
            onEvent({ type, object });
          } catch (err) {
            finish(err as Error);
          }
        },
        close: () => finish(),
        fail: (err: Error) => finish(err),
      };
      this.watches.push(handle);
    });
  }

  lastWatch(): WatchHandle {
    const w = this.watches.at(-1);
    if (w === undefined) throw new Error('no watch yet');
    return w;
  }

  /** Requests of the list-watch loops so far (the readiness poll is not one). */
  listsAndWatches(): number {
    return this.lists.length + this.watches.length;
  }
}

/** A list answer as the API server sends it: `items` at the list's resourceVersion `rv`. */
export function objectList(rv: string, ...items: unknown[]): unknown {
  return { metadata: { resourceVersion: rv }, items };
}

/** A list answer of pods named `names`, all at resourceVersion `rv`. */
export function podList(rv: string, ...names: string[]): unknown {
  return objectList(rv, ...names.map((n) => podJson(n, { rv })));
}

/**
 * The Status a kube-apiserver answers for a resourceVersion it has not reached (a list at that
 * version, as a 504, or a watch-list, as an ERROR event), as 1.35 sends it:
 * discovery-kubernetes.test.ts holds the real answer equal to this.
 */
export function tooLargeStatus(asked: string, current: string): unknown {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `Timeout: Too large resource version: ${asked}, current: ${current}`,
    reason: 'Timeout',
    details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 },
    code: 504,
  };
}

/** What a socket error looks like from kube-http: no status. */
export const refused = (): KubeApiError => new KubeApiError(undefined, 'ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:6443');

function answerOrHang<T>(answer: T | Error | undefined, signal: AbortSignal): Promise<T> {
  if (answer instanceof Error) return Promise.reject(answer);
  if (answer !== undefined) return Promise.resolve(answer);
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(aborted(signal))));
}

function aborted(signal: AbortSignal): KubeApiError {
  const reason: unknown = signal.reason;
  return new KubeApiError(undefined, 'Aborted', reason instanceof Error ? reason.message : String(reason));
}
