// A simulated apigw replica: answers the probe location like nginx's token store (200 when it
// holds the token, 401 when not), or misbehaves on demand. Used by tests, the demo and the bench.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export type ReplicaBehaviour =
  | { readonly kind: 'store' } // the normal replica
  | { readonly kind: 'status'; readonly status: number } // always this status
  | { readonly kind: 'hang' } // accepts, never answers
  | { readonly kind: 'reset' } // resets the connection on each request
  | { readonly kind: 'close-mid-response' } // sends headers and part of a body, then closes
  | { readonly kind: 'gate'; readonly open: Promise<void> } // answers like 'store' once `open` resolves
  | { readonly kind: 'delay'; readonly ms: number } // answers like 'store', ms later
  | { readonly kind: 'endless-body' } // 200, then a body that never ends (until the client goes)
  | { readonly kind: 'sized-body'; readonly bytes: number } // 200 with a body of exactly this many bytes (Content-Length)
  | { readonly kind: 'drip'; readonly everyMs: number } // the store's answer, one byte every everyMs
  | { readonly kind: 'garbage' }; // bytes that are not HTTP, then close

export interface ReplicaOptions {
  readonly host: string;
  readonly port: number;
  readonly path?: string;
  readonly header?: string;
  readonly prefix?: string;
}

export class ReplicaServer {
  behaviour: ReplicaBehaviour = { kind: 'store' };
  /** Probe requests received, in total and per token. */
  requests = 0;
  private readonly perToken = new Map<string, number>();
  /** token → the time (performance.now(), monotonic: wall-clock steps do not move it) from which the replica holds it. */
  private readonly tokens = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  /** Connections accepted in total (churn shows here). */
  connectionsAccepted = 0;
  /** Probe requests received and not yet answered (or abandoned), and the most there were at once. */
  inFlight = 0;
  maxInFlight = 0;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  static async start(options: ReplicaOptions): Promise<ReplicaServer> {
    const path = options.path ?? '/apigw-syncer/probe';
    const header = (options.header ?? 'authorization').toLowerCase();
    const prefix = options.prefix ?? 'Bearer ';
    const server = createServer({ keepAliveTimeout: 60_000 });
    const replica = new ReplicaServer(server, options.host, options.port);
    server.on('connection', (socket: Socket) => {
      replica.sockets.add(socket);
      replica.connectionsAccepted++;
      socket.on('close', () => replica.sockets.delete(socket));
    });
    server.on('request', (req, res) => {
      const value = req.headers[header];
      const token = typeof value === 'string' && value.startsWith(prefix) ? value.slice(prefix.length) : undefined;
      if (req.url !== path) {
        res.writeHead(404).end();
        return;
      }
      replica.requests++;
      replica.maxInFlight = Math.max(replica.maxInFlight, ++replica.inFlight);
      res.once('close', () => replica.inFlight--);
      if (token !== undefined) replica.perToken.set(token, (replica.perToken.get(token) ?? 0) + 1);
      const answer = (): void => {
        const from = token === undefined ? undefined : replica.tokens.get(token);
        const held = from !== undefined && performance.now() >= from;
        res.writeHead(held ? 200 : 401, { 'Content-Type': 'text/plain' }).end(held ? 'ok\n' : 'unauthorized\n');
      };
      const b = replica.behaviour;
      switch (b.kind) {
        case 'store':
          return answer();
        case 'gate':
          void b.open.then(answer);
          return;
        case 'delay':
          setTimeout(answer, b.ms);
          return;
        case 'status':
          res.writeHead(b.status, { 'Content-Type': 'text/plain' }).end('status\n');
          return;
        case 'hang':
          return;
        case 'reset':
          req.socket.resetAndDestroy();
          return;
        case 'close-mid-response':
          res.writeHead(200, { 'Content-Length': '100' });
          res.write('partial');
          setImmediate(() => req.socket.destroy());
          return;
        case 'endless-body': {
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          const chunk = Buffer.alloc(64 * 1024, 0x61);
          // Writes as fast as the client reads, until the client drops the connection.
          const pump = (): void => {
            while (!res.destroyed && res.write(chunk));
            if (!res.destroyed) res.once('drain', pump);
          };
          pump();
          return;
        }
        case 'sized-body':
          res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': b.bytes }).end(Buffer.alloc(b.bytes, 0x61));
          return;
        case 'drip': {
          const from = token === undefined ? undefined : replica.tokens.get(token);
          const held = from !== undefined && performance.now() >= from;
          // Raw bytes on the socket, so the connection closes after them (Node's own response is never sent).
          const text = `HTTP/1.1 ${held ? '200 OK' : '401 Unauthorized'}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
          const socket = req.socket;
          let i = 0;
          const timer = setInterval(() => {
            if (socket.destroyed) return clearInterval(timer);
            if (i >= text.length) {
              clearInterval(timer);
              socket.end();
              return;
            }
            socket.write(text[i++]!);
          }, b.everyMs);
          socket.once('close', () => clearInterval(timer));
          return;
        }
        case 'garbage':
          req.socket.end('\x00\x01 this is not HTTP \xff\r\n\r\n');
          return;
      }
    });
    server.listen(options.port, options.host);
    await once(server, 'listening');
    return replica;
  }

  /** The replica holds `token` from `lagMs` from now on (replication lag). */
  give(token: string, lagMs = 0): void {
    this.tokens.set(token, performance.now() + lagMs);
  }

  /** Connections currently open to this replica (keep-alive pools hold them between checks). */
  get openConnections(): number {
    return this.sockets.size;
  }

  requestsFor(token: string): number {
    return this.perToken.get(token) ?? 0;
  }

  /** Closes every open connection from this side (idle keep-alive ones too), as a peer does after its keep-alive timeout. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Starts `count` replicas on consecutive loopback addresses, all on one port, like pods. */
export async function startReplicas(count: number, base: { net: string; first: number; port: number }): Promise<ReplicaServer[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) => ReplicaServer.start({ host: `${base.net}${base.first + i}`, port: base.port })),
  );
}
