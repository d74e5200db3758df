// Plain GET and watch requests to the API server over node:http(s), authenticated per request
// by the ApiCredentials (api-credentials.ts: the pod's service account, or a kubeconfig).
//
// Why not the library's list calls and Watch class: the reflector needs one AbortSignal that
// ends a request in any phase (connect, headers, body) for its watchdog and for stop(); the
// API server's Status body on 403/410 (the library's Watch drops it and keeps only the code);
// and an undecodable line to fail the watch rather than be skipped silently. Both list and watch
// then share one decoding path into the narrowed objects of objects.ts.
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { ApiCredentials } from './credentials.js';

export class KubeApiError extends Error {
  constructor(
    /** HTTP status, or undefined when no response arrived (connection refused, reset, aborted). */
    readonly status: number | undefined,
    /** Status.reason from the API server (Forbidden, Expired, …) or the socket error code. */
    readonly reason: string,
    message: string,
    /** Status.details.causes[].reason (ResourceVersionTooLarge, …). */
    readonly causes: readonly string[] = [],
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** A list response or watch ERROR object asking for a relist: the resourceVersion is too old. */
export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 410;
}

/**
 * The server has not reached the resourceVersion asked for (504, cause ResourceVersionTooLarge):
 * it answers for an older state than ours, as after a failover to a server that is behind. As
 * with 410, only a new list helps (client-go's reflector: isTooLargeResourceVersionError, which
 * also matches the message of servers that sent no cause).
 */
export function isTooLargeResourceVersion(err: unknown): boolean {
  return err instanceof KubeApiError && (err.causes.includes('ResourceVersionTooLarge') || (err.status === 504 && err.message.includes('Too large resource version')));
}

/** Status.details.causes[].reason of a Status object, in order. */
export function statusCauses(status: unknown): string[] {
  const causes = (status as { details?: { causes?: unknown } } | null)?.details?.causes;
  if (!Array.isArray(causes)) return [];
  return causes.map((c: { reason?: unknown } | null) => c?.reason).filter((r): r is string => typeof r === 'string');
}

export type Query = Readonly<Record<string, string | undefined>>;

export interface KubeHttp {
  /** GET a JSON document; non-2xx answers and transport failures reject with KubeApiError. */
  getJson(path: string, query: Query, signal: AbortSignal): Promise<unknown>;
  /**
   * GET ?watch=true and hand every decoded line to onEvent. Resolves when the server ends the
   * stream cleanly; rejects on any failure, or with what onEvent throws. onOpen runs on the 200.
   */
  watch(path: string, query: Query, signal: AbortSignal, onOpen: () => void, onEvent: (event: unknown) => void): Promise<void>;
  /** GET a path whose status is the answer (/readyz); the body is read and dropped. Rejects only when no answer arrives. */
  getStatus(path: string, signal: AbortSignal): Promise<number>;
}

// A list of a few hundred pods is a few MB; anything far beyond means something is wrong.
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/**
 * `credentials` may be a loader, run on the first request (so discovery starts, and reports a
 * missing service account or kubeconfig as an API failure, like any other).
 */
export function createKubeHttp(credentials: ApiCredentials | (() => Promise<ApiCredentials>)): KubeHttp {
  let loaded: Promise<ApiCredentials> | undefined;
  const load = (): Promise<ApiCredentials> => {
    if (loaded !== undefined) return loaded;
    const p = typeof credentials === 'function' ? credentials() : Promise.resolve(credentials);
    loaded = p;
    // A failed load (no kubeconfig yet, say) is retried by the next request, not cached.
    p.catch(() => {
      if (loaded === p) loaded = undefined;
    });
    return p;
  };

  /** Sends one GET; resolves at the response headers, whatever the status. */
  async function send(path: string, query: Query, signal: AbortSignal): Promise<IncomingMessage> {
    const options: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
    let server: string;
    try {
      const creds = await load();
      server = creds.server;
      // A kubeconfig's credential plugin (exec) may hang: the request's own bound covers the wait.
      await untilAborted(creds.authorize(options), signal, 'waiting for the credentials');
    } catch (err) {
      // The request's own bound ended the wait (untilAborted says so), or ended it meanwhile.
      if (err instanceof KubeApiError) throw err;
      if (signal.aborted) throw transportError(err, signal);
      throw new KubeApiError(undefined, 'NoCredentials', `cannot authenticate to the API server: ${err instanceof Error ? err.message : String(err)}`);
    }
    const url = new URL(server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    signal.throwIfAborted();
    const transport = url.protocol === 'http:' ? http : https;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = transport.request(url, { ...options, signal }, resolve);
      req.on('error', (err: NodeJS.ErrnoException) => reject(transportError(err, signal)));
      req.end();
    });
  }

  /** Sends one GET; a status other than 200 rejects with the API server's Status. */
  async function open(path: string, query: Query, signal: AbortSignal): Promise<IncomingMessage> {
    const res = await send(path, query, signal);
    if (res.statusCode === 200) return res;
    throw await statusError(res);
  }

  return {
    async getJson(path, query, signal) {
      const res = await open(path, query, signal);
      try {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of res) {
          const buf = chunk as Buffer;
          size += buf.length;
          if (size > MAX_BODY_BYTES) throw new KubeApiError(200, 'TooLarge', `response to ${path} exceeds ${MAX_BODY_BYTES} bytes`);
          chunks.push(buf);
        }
        return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      } catch (err) {
        res.destroy();
        throw err instanceof KubeApiError ? err : transportError(err, signal);
      }
    },

    async watch(path, query, signal, onOpen, onEvent) {
      const res = await open(path, { ...query, watch: 'true' }, signal);
      onOpen();
      res.setEncoding('utf8');
      let pending = '';
      try {
        for await (const chunk of res) {
          pending += chunk as string;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl).trim();
            pending = pending.slice(nl + 1);
            if (line === '') continue;
            let event: unknown;
            try {
              event = JSON.parse(line);
            } catch {
              throw new KubeApiError(200, 'BadWatchLine', `undecodable watch line from ${path}: ${line.slice(0, 200)}`);
            }
            onEvent(event);
          }
          if (pending.length > MAX_BODY_BYTES) throw new KubeApiError(200, 'TooLarge', `watch line from ${path} exceeds ${MAX_BODY_BYTES} bytes`);
        }
      } catch (err) {
        res.destroy();
        throw err instanceof Error && !isSocketError(err) ? err : transportError(err, signal);
      }
    },

    async getStatus(path, signal) {
      const res = await send(path, {}, signal);
      try {
        // Read to the end so the keep-alive connection serves the next poll; the caller's signal bounds it.
        for await (const chunk of res) void chunk;
      } catch (err) {
        res.destroy();
        throw transportError(err, signal);
      }
      return res.statusCode ?? 0;
    },
  };
}

/** `work`, or a rejection as soon as `signal` aborts (`work` itself is left to finish or not). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const abort = (): void => reject(new KubeApiError(undefined, 'Aborted', `${transportError(undefined, signal).message} (${what})`));
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

function isSocketError(err: Error): boolean {
  return !(err instanceof KubeApiError) && (err.name === 'AbortError' || 'code' in err);
}

function transportError(err: unknown, signal: AbortSignal): KubeApiError {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    const text = reason instanceof Error ? reason.message : String(reason);
    return new KubeApiError(undefined, 'Aborted', text);
  }
  const e = err as NodeJS.ErrnoException;
  return new KubeApiError(undefined, e.code ?? e.name ?? 'Error', e.message ?? String(err));
}

/** Reads the API server's Status body (bounded) into an error that names reason and message. */
async function statusError(res: IncomingMessage): Promise<KubeApiError> {
  const status = res.statusCode ?? 0;
  let text = '';
  try {
    res.setEncoding('utf8');
    for await (const chunk of res) {
      text += chunk as string;
      if (text.length > 64 * 1024) break;
    }
  } catch {
    // The status line is enough to act on; a broken body only loses detail.
  }
  res.destroy();
  let reason = http.STATUS_CODES[status] ?? 'Error';
  let message = text.slice(0, 500);
  let causes: string[] = [];
  try {
    const body = JSON.parse(text) as { reason?: unknown; message?: unknown };
    if (typeof body.reason === 'string' && body.reason !== '') reason = body.reason;
    if (typeof body.message === 'string') message = body.message;
    causes = statusCauses(body);
  } catch {
    // Not a Status object (a proxy in between, say): keep the raw text.
  }
  return new KubeApiError(status, reason, `${status} ${reason}: ${message}`, causes);
}
