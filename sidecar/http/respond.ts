// Small response helpers shared by both listeners.
import type { ServerResponse } from 'node:http';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** Sends `payload`, JSON text already. */
export function sendJsonText(res: ServerResponse, status: number, payload: string, headers: Readonly<Record<string, string>> = {}): void {
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(payload),
    'Cache-Control': 'no-store',
  });
  // A HEAD answer keeps its Content-Length; Node writes no body for it (it ignores the chunk).
  res.end(payload);
}

export function sendError(res: ServerResponse, status: number, error: string, headers: Readonly<Record<string, string>> = {}): void {
  sendJson(res, status, { error }, headers);
}

/** The query string without its "?", empty when there is none. */
export function queryOf(url: string | undefined): string {
  const u = url ?? '';
  const q = u.indexOf('?');
  return q === -1 ? '' : u.slice(q + 1);
}

/** The request path without its query string. */
export function pathOf(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q === -1 ? u : u.slice(0, q);
}
