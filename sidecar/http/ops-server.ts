// Ops listener for the kubelet and Prometheus: liveness, readiness, metrics, and the OpenAPI
// document of both listeners (openapi.json, the one source of the API's contract).
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { CanaryReport, DiscoveryState, PeerSet } from '../model.js';
import openapi from './openapi.json' with { type: 'json' };
import { pathOf, sendError, sendJson, sendJsonText } from './respond.js';
import { reportUnexpected } from '../unexpected.js';

/** Serialized once: the document never changes while the process runs. */
const OPENAPI_TEXT = JSON.stringify(openapi);

export interface OpsDeps {
  readonly current: () => PeerSet | undefined;
  readonly discoveryState: () => DiscoveryState;
  /** Renders the Prometheus text; called at most once per METRICS_TTL_MS, however often scraped. */
  readonly renderMetrics: () => Promise<string>;
  readonly metricsContentType: string;
  readonly isDraining: () => boolean;
  readonly now: () => number;
  /** The canary's last report (absent while the canary is off, and until its first run ends). */
  readonly canary?: () => CanaryReport | undefined;
}

/**
 * The canary's verdict in /readyz's body, for a person asking one pod: said there, never acted on
 * (a broken zone_sync must not take every replica out of service at once).
 */
export function canaryStatus(report: CanaryReport) {
  let slowestMs: number | null = null;
  const notArrived: Array<{ name: string; result: string }> = [];
  for (const p of report.peers) {
    if (p.result !== 'arrived') notArrived.push({ name: p.name, result: p.result });
    else if (p.delayMs !== null) slowestMs = Math.max(slowestMs ?? 0, Math.round(p.delayMs * 100) / 100);
  }
  return {
    result: report.result,
    startedAt: new Date(report.startedAt).toISOString(),
    endedAt: new Date(report.endedAt).toISOString(),
    cause: report.cause,
    peers: report.peers.length,
    arrived: report.peers.length - notArrived.length,
    slowestMs,
    notArrived,
  };
}

/**
 * Rendered metrics are served again for this long, and concurrent scrapes share one render: a
 * scrape flood (the listener is reachable from the pod network) costs at most ten renders a
 * second (about 1 % of a core; ~4 % at 99 peers, whose per-peer series make the text 16×
 * longer), not one per request, so it cannot starve checks on the shared event loop. Short
 * enough that no reader notices: Prometheus scrapes every 15 s or so.
 */
export const METRICS_TTL_MS = 100;

export function createOpsServer(deps: OpsDeps): Server {
  let rendered: { text: Promise<string>; at: number } | undefined;
  const metrics = (): Promise<string> => {
    const now = deps.now();
    if (rendered === undefined || now - rendered.at >= METRICS_TTL_MS) {
      const text = deps.renderMetrics();
      rendered = { text, at: now };
      // A failed render is not served again.
      text.catch(() => {
        if (rendered?.text === text) rendered = undefined;
      });
    }
    return rendered.text;
  };

  return createServer((req, res) => {
    try {
      answer(req.method, req.url, res);
    } catch (err) {
      // A bug in an ops answer reaches neither the process nor the check listener. The connection
      // is closed without an answer (none is documented for it): the kubelet counts a failed probe.
      reportUnexpected('event', 'an ops request', err);
      res.destroy();
    }
  });

  function answer(method: string | undefined, url: string | undefined, res: ServerResponse): void {
    if (method !== 'GET' && method !== 'HEAD') return sendError(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    switch (pathOf(url)) {
      case '/healthz':
        return sendJson(res, 200, { status: 'ok' });
      case '/readyz': {
        // Readiness depends only on the first peer set: a stale set still answers checks.
        const set = deps.current();
        if (deps.isDraining()) return sendJson(res, 503, { status: 'shutting down' });
        if (set === undefined) return sendJson(res, 503, { status: 'waiting for discovery' });
        const canary = deps.canary?.();
        const ready = { status: 'ready', discovery: deps.discoveryState(), peers: set.peers.length, version: set.version };
        return sendJson(res, 200, canary === undefined ? ready : { ...ready, canary: canaryStatus(canary) });
      }
      case '/openapi.json':
        return sendJsonText(res, 200, OPENAPI_TEXT);
      case '/metrics':
        metrics().then(
          (text) => {
            res.writeHead(200, { 'Content-Type': deps.metricsContentType });
            // Node omits the body of an answer to HEAD (doc/api/http.md, response.write()).
            res.end(text);
          },
          () => sendError(res, 500, 'metrics collection failed'),
        )
          // Writing to a socket that just closed must not become an unhandled rejection.
          .catch(() => res.destroy());
        return;
      default:
        return sendError(res, 404, 'not found');
    }
  }
}
