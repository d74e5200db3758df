// The check API that nginx auth_request calls on localhost: GET /v1/synced.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Checker } from '../check/checker.js';
import type { PeerStore } from '../discovery/peer-store.js';
import type { Telemetry } from '../telemetry/metrics.js';
import { tokenFingerprint } from '../telemetry/logger.js';
import { parseCheckRequest } from './check-request.js';
import { pathOf, queryOf, sendError, sendJson } from './respond.js';

export interface ApiDeps {
  readonly checker: Checker;
  readonly store: PeerStore;
  readonly telemetry: Telemetry;
  readonly log: Logger;
  readonly defaultOrigin: string;
  readonly now: () => number;
  readonly isDraining: () => boolean;
}

const CHECK_PATH = '/v1/synced';

export function createApiServer(deps: ApiDeps): Server {
  let sequence = 0;
  const idPrefix = process.pid.toString(36);
  const server = createServer(
    // Tokens up to 8 KiB must reach our own 400 answer instead of Node's bare 431.
    { maxHeaderSize: 32 * 1024, keepAliveTimeout: 65_000 },
    (req, res) => {
      if (pathOf(req.url) !== CHECK_PATH) return sendError(res, 404, 'not found');
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
      handleCheck(req, res, `${idPrefix}-${(++sequence).toString(36)}`, deps);
    },
  );
  return server;
}

function handleCheck(req: IncomingMessage, res: ServerResponse, checkId: string, deps: ApiDeps): void {
  const { telemetry, log } = deps;
  if (deps.isDraining()) {
    telemetry.checkRejected('shutting_down');
    return sendError(res, 503, 'shutting down', { Connection: 'close' });
  }
  const parsed = parseCheckRequest(req.headers['x-auth-token'], req.headers['x-nginx-origin'], deps.defaultOrigin, queryOf(req.url));
  if (!parsed.ok) {
    telemetry.checkRejected('bad_token');
    return sendError(res, 400, parsed.error);
  }
  if (deps.store.current() === undefined) {
    telemetry.checkRejected('not_ready');
    return sendError(res, 503, 'discovery has not produced a peer set yet');
  }
  const started = deps.now();
  telemetry.checkStarted();
  const { result, shared } = deps.checker.check(parsed.token, parsed.origin);
  void result.then((r) => {
    const durationMs = round(deps.now() - started);
    // Strict checks deny with 403 unless Synced: auth_request passes 403 on, so nginx can reject
    // without any further logic; the verdict header and body are the same either way.
    const status = parsed.strict && r.verdict !== 'Synced' ? 403 : 200;
    // Answer first: nginx is holding a client request; logging and metrics can follow.
    sendJson(res, status, { checkId, verdict: r.verdict, durationMs, shared, peers: r.peers }, { 'X-Token-Status': r.verdict });
    telemetry.checkAnswered(r.verdict, durationMs / 1000, shared);
    if (log.isLevelEnabled('info')) {
      const counts = { synced: 0, missing: 0, error: 0, timeout: 0 };
      for (const p of r.peers) counts[p.outcome]++;
      const fp = tokenFingerprint(parsed.token);
      log.info({ checkId, origin: parsed.origin, fp, verdict: r.verdict, durationMs, peers: r.peers.length, ...counts, shared }, 'check');
    }
    if (log.isLevelEnabled('debug')) log.debug({ checkId, peers: r.peers }, 'check peers');
  });
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
