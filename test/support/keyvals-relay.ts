// One pod's token API as a sidecar's canary sees it (SYNCER_CANARY_URL), in front of whatever
// plays that pod's store and zone_sync: it takes the keyvals write — POST
// /api/<n>/http/keyvals/<zone> with {"<key>": "<value>" | {"value", "expire"}} — hands the key to
// `deliver` (write it to the pod's own store, then replicate it), and answers what `deliver`
// says (201 when written). The real-nginx canary test delivers through each pod's nginx API
// (ReplicationSim); the demo and in-process tests give the key to simulated replicas.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KeyvalsWrite {
  readonly zone: string;
  readonly key: string;
  readonly value: string;
  readonly expireMs: number | undefined;
}

/** Writes one key; resolves with the status to answer (201: written). */
export type Deliver = (write: KeyvalsWrite) => Promise<number> | number;

const PATH = /^\/api\/[0-9]+\/http\/keyvals\/([A-Za-z0-9_-]+)$/;

/** Parses a keyvals write body with exactly one pair, or undefined when it is not one. */
function parseWrite(zone: string, body: string): KeyvalsWrite | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const entries = Object.entries(doc);
  if (entries.length !== 1) return undefined;
  const [key, spec] = entries[0]!;
  if (typeof spec === 'string') return { zone, key, value: spec, expireMs: undefined };
  if (typeof spec !== 'object' || spec === null) return undefined;
  const { value, expire } = spec as { value?: unknown; expire?: unknown };
  if (typeof value !== 'string' || (expire !== undefined && typeof expire !== 'number')) return undefined;
  return { zone, key, value, expireMs: expire };
}

export class KeyvalsRelay {
  private constructor(
    private readonly server: Server,
    /** http://host:port/api/9/http/keyvals/apigw_tokens: what SYNCER_CANARY_URL points at. */
    readonly url: string,
    /** Writes taken (whatever `deliver` answered), in order. */
    readonly writes: readonly KeyvalsWrite[],
  ) {}

  static async start(deliver: Deliver, host = '127.0.0.1'): Promise<KeyvalsRelay> {
    const writes: KeyvalsWrite[] = [];
    const server = createServer((req, res) => {
      const zone = PATH.exec(req.url ?? '')?.[1];
      if (zone === undefined || req.method !== 'POST') return void res.writeHead(404).end();
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const write = parseWrite(zone, body);
        if (write === undefined) return void res.writeHead(400).end('{"error":{"code":"KeyvalFormatError"}}');
        writes.push(write);
        Promise.resolve()
          .then(() => deliver(write))
          .then(
            (status) => res.writeHead(status).end(),
            () => res.writeHead(502).end(),
          );
      });
    });
    server.listen(0, host);
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    return new KeyvalsRelay(server, `http://${host}:${port}/api/9/http/keyvals/apigw_tokens`, writes);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
