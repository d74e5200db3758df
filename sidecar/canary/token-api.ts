// Writes the canary's key into this pod's own token store, through its keyvals API on loopback:
// POST {"<key>": {"value": "<value>", "expire": <ms>}} → 201, the NGINX Plus API's request (and
// the open-source stand-in's). One keep-alive connection, every write bounded in time. The
// outcome is a value, never an exception, and never holds the key.
// Client's and the request API's own modules rather than undici's index, which loads fetch,
// WebSocket, the cache, mocks and every other dispatcher (peer-channels.ts imports Pool the
// same way; types: undici-pool.d.ts). The index is also what puts `request` on every
// dispatcher's prototype, so the write calls it on the client itself.
import Client from 'undici/lib/dispatcher/client.js';
import request from 'undici/lib/api/api-request.js';

export type WriteOutcome = { readonly ok: true } | { readonly ok: false; readonly cause: string };

const WRITTEN: WriteOutcome = Object.freeze({ ok: true });
/** A longer answer body (the API's JSON error) is not read further. */
const MAX_ANSWER_BYTES = 4 * 1024;

function causeOf(err: unknown): string {
  if (!(err instanceof Error)) return 'unknown';
  const code = (err as Error & { code?: unknown }).code;
  // AbortSignal.timeout's reason is a DOMException named TimeoutError.
  return typeof code === 'string' ? code : err.name;
}

export class TokenApi {
  private readonly client: Client;
  private readonly path: string;

  /** `url`: the keyvals API of the token zone (config.ts validates it: loopback, /api/N/http/keyvals/<zone>). */
  constructor(
    url: string,
    private readonly timeoutMs: number,
  ) {
    const parsed = new URL(url);
    this.path = parsed.pathname;
    this.client = new Client(parsed.origin, { connect: { timeout: timeoutMs } });
  }

  /** Adds `key` with `value`, expiring after `expireMs`: written only on a 201. */
  async write(key: string, value: string, expireMs: number): Promise<WriteOutcome> {
    try {
      const res = await request.call(this.client, {
        method: 'POST',
        path: this.path,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ [key]: { value, expire: expireMs } }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await res.body.dump({ limit: MAX_ANSWER_BYTES });
      return res.statusCode === 201 ? WRITTEN : { ok: false, cause: `HTTP ${res.statusCode}` };
    } catch (err) {
      return { ok: false, cause: causeOf(err) };
    }
  }

  async close(): Promise<void> {
    await this.client.destroy();
  }
}
