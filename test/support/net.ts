// Small network helpers for tests: free ports, one HTTP(S) request on a fresh connection, and
// waiting for a URL to answer a status.
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { createServer } from 'node:net';
import { waitFor, type WaitOptions } from './wait.js';

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** Whether the request went out on a kept-alive connection an earlier request had opened. */
  readonly reusedSocket: boolean;
}

export interface HttpOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly timeoutMs?: number;
  /** Source address of the connection (a 127.x address), for tests of source-address rules. */
  readonly localAddress?: string;
  /** A keep-alive agent, to send on a connection an earlier request opened (default: a fresh connection). */
  readonly agent?: Agent;
  /** https: the CA to trust, a client certificate and its key, the name to check (PEM contents). */
  readonly tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername'>;
}

/** One request, on a fresh connection unless `agent` is given (each test request is independent). */
export function http(url: string, options: HttpOptions = {}): Promise<HttpResult> {
  const { method = 'GET', headers = {}, body, timeoutMs = 10_000, localAddress, agent = false, tls = {} } = options;
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent, timeout: timeoutMs, localAddress, ...tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), reusedSocket: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A port that was free on `host` a moment ago (the kernel picks it from its ephemeral range). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

function canListen(port: number, host: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * n distinct ports free on `host`, drawn at random from 20000-32767: below Linux's ephemeral
 * range (32768-60999), so neither outgoing connections nor other tests' `listen(0)` get them
 * from the kernel. For a server that is stopped and started again on the same port (the test
 * control plane's kube-apiserver during an outage).
 */
export async function freePortsBelowEphemeral(n: number, host = '127.0.0.1'): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < n; tries++) {
    if (tries > 500) throw new Error(`no free ports on ${host} in 20000-32767`);
    const port = 20000 + Math.floor(Math.random() * 12768);
    if (!ports.includes(port) && (await canListen(port, host))) ports.push(port);
  }
  return ports;
}

export interface HttpWaitOptions extends Omit<WaitOptions, 'retryOnError'> {
  /** The status that means ready (default 200). */
  readonly status?: number;
  /** Bound of each request (default 1 000 ms). */
  readonly requestTimeoutMs?: number;
}

/**
 * Polls GET `url` (a fresh connection each time) until it answers `status`, and resolves with
 * that answer. Refused, failed and timed-out requests and other statuses count as "not yet";
 * the timeout error names the last of them.
 */
export function waitForHttp(url: string, opts: HttpWaitOptions = {}): Promise<HttpResult> {
  const { status = 200, requestTimeoutMs = 1_000, ...wait } = opts;
  return waitFor(
    async () => {
      const res = await http(url, { timeoutMs: requestTimeoutMs });
      if (res.status !== status) throw new Error(`HTTP ${res.status}`);
      return res;
    },
    `${status} from ${url}`,
    { ...wait, retryOnError: true },
  );
}
