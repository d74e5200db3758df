// One probe of one peer: does it hold the token? Classifies the answer, never throws.
import type { Dispatcher } from 'undici';

/** synced: 200; missing: 401; error: transient (connect, timeout, 5xx, broken body); unexpected: any other status. */
export type ProbeResultKind = 'synced' | 'missing' | 'error' | 'unexpected' | 'aborted';

export interface ProbeResult {
  readonly kind: ProbeResultKind;
  /** HTTP status, when the peer answered with one. */
  readonly status: number | null;
  /** Error code for failures without a status (ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT, …). */
  readonly errorCode: string | null;
}

export function classifyStatus(status: number): ProbeResultKind {
  if (status === 200) return 'synced';
  if (status === 401) return 'missing';
  if (status >= 500) return 'error';
  return 'unexpected';
}

function errorCodeOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    return typeof code === 'string' ? code : err.name;
  }
  return 'UNKNOWN';
}

export async function probe(
  pool: Dispatcher,
  path: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
): Promise<ProbeResult> {
  let status: number | null = null;
  try {
    const response = await pool.request({ method: 'GET', path, headers, signal });
    status = response.statusCode;
    // Read the (small) body to its end: a connection closed mid-response is not an answer,
    // and only a fully read response returns its connection to the keep-alive pool.
    await response.body.text();
    return { kind: classifyStatus(status), status, errorCode: null };
  } catch (err) {
    if (signal.aborted) return { kind: 'aborted', status, errorCode: null };
    return { kind: 'error', status, errorCode: errorCodeOf(err) };
  }
}
