// The one place that knows whether Kubernetes discovery is failing, and when to try again.
//
// Every list, watch and get reports here. A failure marks its resource failing (logged by
// api-errors.ts; the peer store counts it and goes stale), a success clears it, and when no
// resource is failing any more the source is told, so it republishes and the store is synced.
//
// While the API server does not answer (no response, or a 5xx: down, restarting, not ready),
// the list-watch loops send nothing: after their backoff (which grows only with failures seen
// while the server answers) they wait in answering(), and one cheap readiness poll per sidecar
// (GET /readyz, every 0.5–1 s with jitter) releases them all as soon as it answers 200. Discovery is then back within about a second of the API
// server, and an API server recovering from an outage sees one small request per sidecar per
// poll instead of every sidecar's three lists or watches. Any authenticated client may read
// /readyz: the default ClusterRole system:public-info-viewer, bound to system:authenticated
// and system:unauthenticated, grants get on /healthz, /livez, /readyz and /version
// (kubernetes.io/docs/reference/access-authn-authz/rbac/, "Default roles and role bindings");
// and "machines that check the healthz/livez/readyz of the API server should rely on the HTTP
// status code. A status code 200 indicates the API server is healthy/live/ready"
// (kubernetes.io/docs/reference/using-api/health-checks/).
import type { Logger } from 'pino';
import type { PeerStore } from '../peer-store.js';
import { withDeadline, type Clock } from '../clock.js';
import { ApiErrorReporter, type ApiResource, type ApiVerb } from './api-errors.js';
import { Backoff, pause, type BackoffPolicy } from './backoff.js';
import { reportUnexpected } from '../../unexpected.js';
import type { KubeApiError, KubeHttp } from './kube-http.js';

/** What a list-watch loop tells, and asks, the API's health. */
export interface ApiHealthReporter {
  /** A request about `resource` failed (never called for 410 Gone, a clean close or a restart). */
  failed(resource: ApiResource, verb: ApiVerb, err: KubeApiError): void;
  /** A list of `resource` succeeded or its watch opened. */
  succeeded(resource: ApiResource): void;
  /** Resolves when a retry is worth sending: at once, unless the API server is not answering; then once it answers, or `signal` aborts. */
  answering(signal: AbortSignal): Promise<void>;
}

export interface ApiHealthOptions {
  readonly http: KubeHttp;
  readonly clock: Clock;
  readonly random: () => number;
  readonly log: Logger;
  readonly namespace: string;
  /** Counts every failure and marks the last set stale. */
  readonly store: Pick<PeerStore, 'reportFailure'>;
  /** No resource is failing any more. */
  readonly recovered: () => void;
}

/** Readiness poll delays: 125–250 ms after the first failure (a blip), then 0.5–1 s for as long as the outage lasts. */
export const READINESS_POLL: BackoffPolicy = { initialMs: 250, maxMs: 1_000, factor: 2 };
/** One poll waits this long at most: a slow answer from a loaded API server still counts, a half-open path does not stall the poll. */
const READINESS_TIMEOUT_MS = 5_000;
/**
 * A starting API server answers 403 to /readyz for a moment, before its RBAC policy is loaded;
 * only this many such answers in a row are taken as a server that will not say (a cluster
 * without system:public-info-viewer), and so as up.
 */
const UNREADABLE_BEFORE_TRUSTED = 3;

export class ApiHealth implements ApiHealthReporter {
  private readonly failures = new Map<ApiResource, string>();
  private latest: string | undefined;
  private notAnswering = false;
  private polling: Promise<void> | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly stopped = new AbortController();
  private readonly errors: ApiErrorReporter;
  /** Answers in a row that were neither 200 nor "not ready". */
  private unreadable = 0;
  private unreadableLogged = false;

  constructor(private readonly o: ApiHealthOptions) {
    this.errors = new ApiErrorReporter(o.log, o.namespace);
  }

  /** Some resource is failing: discovery must not publish. */
  failing(): boolean {
    return this.failures.size > 0;
  }

  /** The reason of the latest failure while any resource is failing. */
  problem(): string | undefined {
    return this.failing() ? this.latest : undefined;
  }

  failed(resource: ApiResource, verb: ApiVerb, err: KubeApiError): void {
    const reason = this.errors.report(verb, resource, err, this.failures.has(resource));
    this.failures.set(resource, reason);
    this.latest = reason;
    this.o.store.reportFailure(verb, reason);
    // A 4xx is an answer: retrying on the caller's backoff is right. Only silence or a 5xx says
    // the server cannot serve yet, which its readiness tells more cheaply than a list.
    if (err.status === undefined || err.status >= 500) this.startPolling();
  }

  succeeded(resource: ApiResource): void {
    this.answeringAgain();
    if (!this.failures.delete(resource)) return;
    this.errors.recovered(resource);
    if (this.failures.size === 0) this.o.recovered();
  }

  answering(signal: AbortSignal): Promise<void> {
    if (!this.notAnswering || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener('abort', done);
    });
  }

  /** Ends the poll and releases every waiter. */
  async stop(): Promise<void> {
    this.stopped.abort();
    for (const w of [...this.waiters]) w();
    await this.polling;
  }

  private startPolling(): void {
    this.notAnswering = true;
    if (this.polling === undefined && !this.stopped.signal.aborted) this.polling = this.poll();
  }

  private async poll(): Promise<void> {
    try {
      const backoff = new Backoff(READINESS_POLL, this.o.random);
      while (this.notAnswering && !this.stopped.signal.aborted) {
        await pause(this.o.clock, backoff.next(), this.stopped.signal);
        if (!this.notAnswering || this.stopped.signal.aborted) break;
        if (await this.ready()) this.answeringAgain();
      }
    } catch (err) {
      // A bug in the poll: the loops waiting for it would wait forever. They go on instead; if
      // the API server still does not answer, their next failure starts a new poll.
      reportUnexpected('promise', 'the API server readiness poll', err);
      this.answeringAgain();
    }
    // Synchronous with the loop's last check, so a failure reported from now on starts a new poll.
    this.polling = undefined;
  }

  /** The API server answers again: the loops waiting in answering() go on. */
  private answeringAgain(): void {
    if (!this.notAnswering) return;
    this.notAnswering = false;
    this.o.log.debug('the API server answers again; list/watch resume');
    for (const w of [...this.waiters]) w();
  }

  /** One GET /readyz: true when the API server says it is ready, or keeps answering but will not say. */
  private async ready(): Promise<boolean> {
    let status: number;
    try {
      const tooLong = (): Error => new Error(`GET /readyz took over ${READINESS_TIMEOUT_MS} ms`);
      status = await withDeadline(this.o.clock, READINESS_TIMEOUT_MS, this.stopped.signal, tooLong, (signal) => this.o.http.getStatus('/readyz', signal));
    } catch (err) {
      this.unreadable = 0;
      this.o.log.debug({ err: err instanceof Error ? err.message : String(err) }, 'API server not answering');
      return false;
    }
    if (status === 200 || status >= 500 || status === 429) {
      this.unreadable = 0;
      if (status !== 200) this.o.log.debug({ status }, 'API server not ready yet');
      return status === 200;
    }
    // A cluster that unbound system:public-info-viewer: answers that keep coming show the server
    // is up, and the loops' own backoff paces their retries from here.
    if (++this.unreadable < UNREADABLE_BEFORE_TRUSTED) return false;
    if (!this.unreadableLogged) this.o.log.info({ status }, 'cannot read /readyz; an API server that keeps answering is taken as up');
    this.unreadableLogged = true;
    return true;
  }
}
