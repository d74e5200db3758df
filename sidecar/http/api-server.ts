// The check API that nginx auth_request calls on localhost: GET (or HEAD) /v1/synced.
// Every request gets an answer: a verdict, a refusal that says why, or — if this code has a bug —
// a 500 for that request alone and a log line; nothing thrown here reaches another request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Admission, Checker } from '../check/checker.js';
import { tokenFingerprint } from '../check/token-keys.js';
import type { CheckAnswered, CheckResult, FanOutResult, RejectReason, Verdict } from '../model.js';
import { parseCheckRequest } from './check-request.js';
import { checkBody } from './check-body.js';
import { pathOf, queryOf, sendError, sendJsonText } from './respond.js';
import { reportUnexpected } from '../unexpected.js';

export interface ApiObserver {
  /** Whether answered() wants CheckAnswered.fingerprint for such an answer (hashing the token costs a little). */
  wantsFingerprint(cached: boolean): boolean;
  answered(event: CheckAnswered): void;
  rejected(reason: RejectReason): void;
}

export interface ApiDeps {
  readonly checker: Checker;
  /** Whether discovery has produced a peer set yet. */
  readonly hasPeers: () => boolean;
  readonly observer: ApiObserver;
  /** For this listener's own failures (a bug answered 500); check lines go through the observer. */
  readonly log: Logger;
  readonly defaultOrigin: string;
  readonly now: () => number;
  readonly isDraining: () => boolean;
}

const CHECK_PATH = '/v1/synced';
/** A memo hit's verdict, the same object every time (its peers were probed by an earlier check). */
const CACHED_RESULT: CheckResult = Object.freeze({ verdict: 'Synced', durationMs: 0, peers: Object.freeze([]) });
const RETRY_AFTER = { 'Retry-After': '1' } as const;
const TOKEN_STATUS: Readonly<Record<Verdict, Readonly<Record<string, string>>>> = {
  Synced: { 'X-Token-Status': 'Synced' },
  Partialy: { 'X-Token-Status': 'Partialy' },
  NotSynced: { 'X-Token-Status': 'NotSynced' },
  Timeout: { 'X-Token-Status': 'Timeout' },
};

export function createApiServer(deps: ApiDeps): Server {
  let sequence = 0;
  const idPrefix = process.pid.toString(36);
  return createServer(
    // Tokens up to 8 KiB must reach our own 400 answer instead of Node's bare 431.
    { maxHeaderSize: 32 * 1024, keepAliveTimeout: 65_000 },
    (req, res) => {
      const checkId = `${idPrefix}-${(++sequence).toString(36)}`;
      try {
        if (pathOf(req.url) !== CHECK_PATH) return sendError(res, 404, 'not found');
        if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
        handleCheck(req, res, checkId, deps);
      } catch (err) {
        internalError(res, checkId, err, deps);
      }
    },
  );
}

function handleCheck(req: IncomingMessage, res: ServerResponse, checkId: string, deps: ApiDeps): void {
  const { observer } = deps;
  if (deps.isDraining()) return reject(res, 'shutting_down', 503, 'shutting down', deps, { Connection: 'close' });
  const parsed = parseCheckRequest(req.headers['x-auth-token'], req.headers['x-nginx-origin'], deps.defaultOrigin, queryOf(req.url));
  if (!parsed.ok) return reject(res, parsed.reason, 400, parsed.error, deps);
  if (!deps.hasPeers()) return reject(res, 'not_ready', 503, 'discovery has not produced a peer set yet', deps);
  const started = deps.now();
  const admission: Admission = deps.checker.check(parsed.token, parsed.origin);
  const fingerprint = observer.wantsFingerprint(admission.kind === 'cached') ? tokenFingerprint(parsed.token) : undefined;
  switch (admission.kind) {
    case 'overloaded':
      return reject(res, 'overloaded', 503, 'overloaded: too many checks in flight', deps, RETRY_AFTER);
    case 'cached':
      return answer(res, { checkId, origin: parsed.origin, fingerprint, status: 200, durationMs: round(deps.now() - started), shared: false, cached: true, result: CACHED_RESULT }, deps);
    case 'running': {
      const { shared } = admission;
      let waiting = true;
      // nginx gave up (its auth_request timeout closes the connection) or the client went away:
      // the request stops counting against SYNCER_MAX_IN_FLIGHT now, not at the deadline.
      res.once('close', () => {
        if (!waiting) return;
        waiting = false;
        admission.leave();
        observer.rejected('abandoned');
      });
      admission.result.then(
        (result: FanOutResult) => {
          if (!waiting) return;
          waiting = false;
          // Strict checks deny with 403 unless Synced: auth_request passes 403 on, so nginx can
          // reject without further logic; the verdict header and body are the same either way.
          const status = parsed.strict && result.verdict !== 'Synced' ? 403 : 200;
          try {
            answer(res, { checkId, origin: parsed.origin, fingerprint, status, durationMs: round(deps.now() - started), shared, cached: false, result }, deps);
          } catch (err) {
            internalError(res, checkId, err, deps);
          }
        },
        (err: unknown) => {
          if (!waiting) return;
          waiting = false;
          internalError(res, checkId, err, deps);
        },
      );
    }
  }
}

/** Answer first: nginx is holding a client request; logs and metrics follow. */
function answer(res: ServerResponse, event: CheckAnswered, deps: ApiDeps): void {
  const { result } = event;
  const body = checkBody(event.checkId, result.verdict, event.durationMs, event.shared, event.cached, result.peers);
  sendJsonText(res, event.status, body, TOKEN_STATUS[result.verdict]);
  deps.observer.answered(event);
}

function reject(res: ServerResponse, reason: RejectReason, status: number, error: string, deps: ApiDeps, headers?: Readonly<Record<string, string>>): void {
  sendError(res, status, error, headers);
  deps.observer.rejected(reason);
}

function internalError(res: ServerResponse, checkId: string, err: unknown, deps: ApiDeps): void {
  try {
    deps.log.error({ err, checkId, answered: res.headersSent }, 'internal error in a check (a bug): answered 500 unless already answered');
    if (!res.headersSent) {
      try {
        sendError(res, 500, 'internal error');
      } catch {
        res.destroy();
      }
    } else if (!res.writableEnded) {
      res.destroy();
    }
    deps.observer.rejected('internal_error');
  } catch (failure) {
    // Even the 500 path failed, where nobody awaits the answer: the connection is closed, so that
    // nginx is not left waiting for an answer that cannot come, and the failure reported.
    res.destroy();
    reportUnexpected('promise', 'answering a check', failure);
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
