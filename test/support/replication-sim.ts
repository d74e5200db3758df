// Plays NGINX Plus zone_sync for the open-source test pods: a token is written to the origin
// replica first (where it was issued) and to every other replica after that replica's own lag
// — or never — through each replica's loopback token API (the keyvals-shaped write endpoint),
// as a token issuer in each pod would. Timers, not sleeps: issue() returns
// as soon as the origin holds the token, and `replicated` settles when the last write lands.
// A write that fails rejects `replicated`: a test that awaits it fails, rather than measure a
// replica that never got the token as if it had.
import { performance } from 'node:perf_hooks';
import { writeToken } from './nginx.js';

export interface SimReplica {
  readonly name: string;
  /** http://127.0.0.1:port of the replica's token API server. */
  readonly apiUrl: string;
}

/** Milliseconds after the origin write, or 'never' (the replica never receives the token). */
export type Lag = number | 'never';

export interface ReplicaWrite {
  readonly name: string;
  /** ms after the origin write at which the write completed; undefined if never written ('never', or cancelled). */
  readonly atMs: number | undefined;
}

/** A write the replica's token API refused or never answered. */
export interface FailedWrite {
  readonly name: string;
  readonly error: string;
}

const isFailed = (w: ReplicaWrite | FailedWrite): w is FailedWrite => 'error' in w;

/** What `replicated` rejects with when writes failed: every failed replica, by name, with its cause. */
export class ReplicationFailed extends Error {
  constructor(readonly failures: readonly FailedWrite[]) {
    super(`replication write failed: ${failures.map((f) => `${f.name}: ${f.error}`).join('; ')}`);
  }
}

export interface Issued {
  readonly token: string;
  /** performance.now() when the origin write completed. */
  readonly originAt: number;
  /** Resolves when every scheduled write has completed; rejects (ReplicationFailed) once they all settled if any failed. */
  readonly replicated: Promise<readonly ReplicaWrite[]>;
  /** Cancels writes that have not started yet. */
  cancel(): void;
}

export class ReplicationSim {
  /** Writes not started yet, each with what cancels it (and settles it as "never written"). */
  private readonly pending = new Map<NodeJS.Timeout, () => void>();

  constructor(
    private readonly origin: SimReplica,
    private readonly others: readonly SimReplica[],
  ) {}

  /**
   * Writes `token` to the origin now, then to each other replica after `lags[name]`
   * (missing name = 0 ms), with `expireMs` if given. Resolves once the origin holds it.
   */
  async issue(token: string, lags: Readonly<Record<string, Lag>> = {}, value = 'issued', expireMs?: number): Promise<Issued> {
    await writeToken(this.origin.apiUrl, token, value, expireMs);
    const originAt = performance.now();
    const mine: NodeJS.Timeout[] = [];
    const writes = this.others.map(
      (replica) =>
        new Promise<ReplicaWrite | FailedWrite>((resolve) => {
          const lag = lags[replica.name] ?? 0;
          if (lag === 'never') {
            resolve({ name: replica.name, atMs: undefined });
            return;
          }
          const timer = setTimeout(() => {
            this.pending.delete(timer);
            writeToken(replica.apiUrl, token, value, expireMs).then(
              () => resolve({ name: replica.name, atMs: performance.now() - originAt }),
              (err: unknown) => resolve({ name: replica.name, error: String(err) }),
            );
          }, lag);
          this.pending.set(timer, () => {
            clearTimeout(timer);
            resolve({ name: replica.name, atMs: undefined });
          });
          mine.push(timer);
        }),
    );
    const replicated = Promise.all(writes).then((all) => {
      const failures = all.filter(isFailed);
      if (failures.length > 0) throw new ReplicationFailed(failures);
      return all.filter((w): w is ReplicaWrite => !isFailed(w));
    });
    // Handled here so a failure while the test is still busy (awaiting a check) does not end the
    // process as an unhandled rejection; it surfaces where the test awaits `replicated`.
    replicated.catch(() => undefined);
    return {
      token,
      originAt,
      replicated,
      cancel: () => mine.forEach((timer) => this.cancelOne(timer)),
    };
  }

  private cancelOne(timer: NodeJS.Timeout): void {
    const cancel = this.pending.get(timer);
    this.pending.delete(timer);
    cancel?.();
  }

  /** Cancels every write not yet started (for t.teardown). */
  stop(): void {
    for (const timer of [...this.pending.keys()]) this.cancelOne(timer);
  }
}
