// One resource's list-then-watch loop (the informer discipline, owned here rather than
// delegated to the library's ListWatch, which stops on any error but 410), writing into a
// store (object-cache.ts) the way client-go's reflector writes into its Store:
//
//   list (consistent read) → store.replace → watch from the list's resourceVersion, bookmarks
//   on, bounded by timeoutSeconds, each event → store.upsert/remove → clean close: watch again
//   from the last seen resourceVersion → failure: told to the API's health (api-health.ts),
//   back off (capped exponential, equal jitter), wait until the API server answers, and watch
//   again → 410 Gone: relist.
//
// A client-side watchdog aborts any watch still open at timeoutSeconds + margin (the server
// ends it at timeoutSeconds, so a longer one is a half-open connection), and a jittered
// periodic relist (resyncMs) is a safety net that also logs any drift it finds.
import type { Logger } from 'pino';
import type { ApiResource } from './api-errors.js';
import type { ApiHealthReporter } from './api-health.js';
import { API_BACKOFF, Backoff, pause } from './backoff.js';
import { withDeadline, type Clock } from '../clock.js';
import { isGone, isTooLargeResourceVersion, KubeApiError, statusCauses, type KubeHttp, type Query } from './kube-http.js';
import type { ReflectorStore } from './object-cache.js';
import { narrowMeta, type Meta, type Narrow } from './objects.js';
import { reportUnexpected } from '../../unexpected.js';

export interface ReflectorOptions<T> {
  readonly resource: ApiResource;
  /** Collection path, e.g. /api/v1/namespaces/ns/pods. */
  readonly path: string;
  readonly narrow: Narrow<T>;
  readonly http: KubeHttp;
  readonly store: ReflectorStore<T>;
  readonly health: ApiHealthReporter;
  readonly watchTimeoutS: number;
  readonly resyncMs: number;
  readonly clock: Clock;
  readonly random: () => number;
  readonly log: Logger;
}

/** A list must answer within this bound; a hung one is aborted and retried with backoff. */
const LIST_TIMEOUT_MS = 30_000;
/** Page size of a list: large enough for any Deployment in one page, bounded for the server. */
const LIST_PAGE = 500;
/** A watch that closed cleanly this fast without one event counts as a failure for backoff. */
const MIN_HEALTHY_WATCH_MS = 1_000;

export function watchdogMs(watchTimeoutS: number): number {
  // Margin for the server's own close to arrive: 5 s plus 10 %, so one slow close is not a failure.
  return Math.round(watchTimeoutS * 1_000 * 1.1 + 5_000);
}

/** Why the loop aborted its own request: not failures, so no backoff and no error report. */
class Restart extends Error {}

export class Reflector<T extends { readonly metadata: Meta }> {
  private query: Query = {};
  private resourceVersion: string | undefined;
  private needList = true;
  private stopped = false;
  private running: Promise<void> | undefined;
  private inFlight: AbortController | undefined;
  /** Between requests (backing off, or waiting for the API server): a resync must not cut the wait short. */
  private waiting = false;
  private resyncTimer: { cancel(): void } | undefined;
  private readonly backoff: Backoff;
  /** Relists the server asked for (410, or 504 too large) with no event in between. */
  private relistsWithoutProgress = 0;
  /** Set when the relist was asked for by the resync timer: only then is drift worth a warning. */
  private resyncing = false;

  constructor(private readonly o: ReflectorOptions<T>) {
    this.backoff = new Backoff(API_BACKOFF, o.random);
  }

  /** Starts (or, with a different query, restarts) the loop with these selectors. */
  start(query: Query): void {
    if (this.stopped) return;
    const same = this.running !== undefined && sameQuery(this.query, query);
    this.query = { ...query };
    if (same) return;
    this.needList = true;
    this.o.store.invalidate();
    if (this.running === undefined) {
      this.running = this.loop();
      return;
    }
    this.o.log.info({ resource: this.o.resource, query }, 'selector changed; relisting');
    this.inFlight?.abort(new Restart('selector changed'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.resyncTimer?.cancel();
    this.inFlight?.abort(new Restart('stopped'));
    await this.running;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const controller = new AbortController();
      this.inFlight = controller;
      try {
        await this.round(controller.signal);
      } catch (err) {
        // A bug in this loop's own steps (API failures are handled in round()): reported, and the
        // loop starts over from a new list after a pause, so that this resource is never left
        // unwatched for good. The objects cached meanwhile keep serving.
        reportUnexpected('promise', `the ${this.o.resource} list-watch loop`, err);
        this.needList = true;
        this.o.store.invalidate();
        await this.wait(this.backoff.next(), controller.signal);
      } finally {
        this.inFlight = undefined;
      }
    }
  }

  /** One list (if needed) and watch, and what a failure of either calls for. */
  private async round(signal: AbortSignal): Promise<void> {
    let verb: 'list' | 'watch' = 'list';
    try {
      if (this.needList) await this.list(signal);
      verb = 'watch';
      const clean = await this.watch(signal);
      if (!clean) await this.wait(this.backoff.next(), signal);
    } catch (err) {
      if (this.stopped || signal.reason instanceof Restart) return;
      if (isGone(err) || isTooLargeResourceVersion(err)) {
        // The server no longer holds history from our resourceVersion (410), or has not reached
        // it (504, too large: a failover to a server that is behind): only a new list helps;
        // watching again from the same version would fail the same way. Repeated without
        // progress in between, it is throttled like a failure.
        const why = isGone(err) ? 'resourceVersion expired (410); relisting' : 'the API server is behind our resourceVersion (504, too large); relisting';
        this.o.log.info({ resource: this.o.resource, rv: this.resourceVersion }, why);
        this.needList = true;
        this.o.store.invalidate();
        if (this.relistsWithoutProgress++ > 0) await this.wait(this.backoff.next(), signal);
        return;
      }
      this.o.health.failed(this.o.resource, verb, err instanceof KubeApiError ? err : new KubeApiError(undefined, 'Error', String(err)));
      await this.wait(this.backoff.next(), signal);
      this.waiting = true;
      await this.o.health.answering(signal);
      this.waiting = false;
    }
  }

  private async wait(ms: number, signal: AbortSignal): Promise<void> {
    this.waiting = true;
    await pause(this.o.clock, ms, signal);
    this.waiting = false;
  }

  /** Lists every page, then hands the whole list to the store in one step. */
  private async list(signal: AbortSignal): Promise<void> {
    const items: T[] = [];
    let rv = '';
    const tooLong = (): Error => new Error(`list ${this.o.resource} took over ${LIST_TIMEOUT_MS} ms`);
    await withDeadline(this.o.clock, LIST_TIMEOUT_MS, signal, tooLong, async (bounded) => {
      let cont: string | undefined;
      do {
        const page = readList(await this.o.http.getJson(this.o.path, { ...this.query, limit: String(LIST_PAGE), continue: cont }, bounded));
        for (const json of page.items) {
          const item = this.o.narrow(json);
          if (item === undefined) this.o.log.warn({ resource: this.o.resource }, 'skipping an object without name or uid');
          else items.push(item);
        }
        rv = page.resourceVersion;
        cont = page.next;
      } while (cont !== undefined);
    });
    this.resourceVersion = rv;
    this.needList = false;
    this.backoff.reset();
    this.scheduleResync();
    this.o.health.succeeded(this.o.resource);
    const drift = this.o.store.replace(items);
    if (this.resyncing && drift > 0) this.o.log.warn({ resource: this.o.resource, drift }, 'periodic relist found objects the watch had missed');
    this.resyncing = false;
    this.o.log.debug({ resource: this.o.resource, items: items.length, rv }, 'listed');
  }

  /** One watch request. Resolves true after a healthy clean close, false after a suspicious one. */
  private async watch(signal: AbortSignal): Promise<boolean> {
    const started = this.o.clock.now();
    let events = 0;
    const ms = watchdogMs(this.o.watchTimeoutS);
    const dead = (): Error => new Error(`watch ${this.o.resource} still open ${ms} ms after timeoutSeconds=${this.o.watchTimeoutS}; treating it as dead`);
    const query: Query = {
      ...this.query,
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(this.o.watchTimeoutS),
    };
    try {
      await withDeadline(this.o.clock, ms, signal, dead, (bounded) =>
        this.o.http.watch(
          this.o.path,
          query,
          bounded,
          () => this.o.health.succeeded(this.o.resource),
          (event) => {
            events++;
            this.apply(event);
          },
        ),
      );
    } finally {
      // Only a watch that delivered something or stayed up a while restarts the backoff schedule:
      // a server that accepts and drops every watch at once is retried ever more slowly.
      if (events > 0 || this.o.clock.now() - started >= MIN_HEALTHY_WATCH_MS) this.backoff.reset();
    }
    if (events === 0 && this.o.clock.now() - started < MIN_HEALTHY_WATCH_MS) {
      this.o.log.debug({ resource: this.o.resource }, 'watch closed at once without events; backing off');
      return false;
    }
    return true;
  }

  private apply(event: unknown): void {
    const ev = event as { type?: unknown; object?: unknown };
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const item = this.o.narrow(ev.object);
        if (item === undefined) break;
        this.progress(item.metadata.resourceVersion);
        this.o.store.upsert(item);
        break;
      }
      case 'DELETED': {
        const meta = narrowMeta(ev.object);
        if (meta === undefined) break;
        this.progress(meta.resourceVersion);
        this.o.store.remove(meta.name);
        break;
      }
      case 'BOOKMARK': {
        // Bookmarks carry only metadata.resourceVersion: progress without a change.
        const rv = (ev.object as { metadata?: { resourceVersion?: unknown } } | undefined)?.metadata?.resourceVersion;
        if (typeof rv === 'string') this.progress(rv);
        break;
      }
      case 'ERROR':
        throw statusObjectError(ev.object);
      default:
        this.o.log.debug({ resource: this.o.resource, type: ev.type }, 'ignoring unknown watch event type');
    }
  }

  private progress(rv: string): void {
    if (rv !== '') this.resourceVersion = rv;
    this.relistsWithoutProgress = 0;
  }

  private scheduleResync(): void {
    this.resyncTimer?.cancel();
    // ±10 % so that the sidecars of every replica do not relist in the same second.
    const ms = Math.round(this.o.resyncMs * (0.9 + 0.2 * this.o.random()));
    this.resyncTimer = this.o.clock.setTimeout(() => {
      if (this.stopped) return;
      this.needList = true;
      this.resyncing = true;
      // A loop that is waiting lists when its wait ends; only a request in flight is cut short.
      if (!this.waiting) this.inFlight?.abort(new Restart('periodic resync'));
    }, ms);
  }
}

function sameQuery(a: Query, b: Query): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if (a[k] !== b[k]) return false;
  return true;
}

function readList(page: unknown): { items: unknown[]; resourceVersion: string; next: string | undefined } {
  const p = page as { items?: unknown; metadata?: { resourceVersion?: unknown; continue?: unknown } } | null;
  const items = Array.isArray(p?.items) ? p.items : undefined;
  const rv = p?.metadata?.resourceVersion;
  if (items === undefined || typeof rv !== 'string') throw new KubeApiError(200, 'BadList', 'list response without items or resourceVersion');
  const next = p?.metadata?.continue;
  return { items, resourceVersion: rv, next: typeof next === 'string' && next !== '' ? next : undefined };
}

/** A watch ERROR event's object is a Status; code 410, or 504 "too large", means "relist". */
function statusObjectError(object: unknown): KubeApiError {
  const s = (object ?? {}) as { code?: unknown; reason?: unknown; message?: unknown };
  const code = typeof s.code === 'number' ? s.code : undefined;
  const reason = typeof s.reason === 'string' ? s.reason : 'WatchError';
  const message = typeof s.message === 'string' ? s.message : JSON.stringify(object);
  return new KubeApiError(code, reason, `watch error event: ${code ?? '?'} ${reason}: ${message}`, statusCauses(object));
}
