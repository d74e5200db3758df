// Ops listener for the kubelet and Prometheus: liveness, readiness, metrics.
import { createServer, type Server } from 'node:http';
import type { PeerStore } from '../discovery/peer-store.js';
import type { Telemetry } from '../telemetry/metrics.js';
import { pathOf, sendError, sendJson } from './respond.js';

export interface OpsDeps {
  readonly store: PeerStore;
  readonly telemetry: Telemetry;
  readonly isDraining: () => boolean;
}

export function createOpsServer(deps: OpsDeps): Server {
  return createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    switch (pathOf(req.url)) {
      case '/healthz':
        return sendJson(res, 200, { status: 'ok' });
      case '/readyz': {
        // Readiness depends only on the first peer set: a stale set still answers checks.
        const set = deps.store.current();
        if (deps.isDraining()) return sendJson(res, 503, { status: 'shutting down' });
        if (set === undefined) return sendJson(res, 503, { status: 'waiting for discovery' });
        return sendJson(res, 200, { status: 'ready', discovery: deps.store.discoveryState(), peers: set.peers.length, version: set.version });
      }
      case '/metrics':
        deps.telemetry.metrics().then(
          (text) => {
            res.writeHead(200, { 'Content-Type': deps.telemetry.contentType });
            res.end(text);
          },
          () => sendError(res, 500, 'metrics collection failed'),
        );
        return;
      default:
        return sendError(res, 404, 'not found');
    }
  });
}
