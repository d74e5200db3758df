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

export const PROBE_TIMEOUT = 'PROBE_TIMEOUT';

/**
 * Probes once, bounded by `timeoutMs` (connect, headers and body together) and by the check's
 * `signal`. The bound is our own timer: undici's headersTimeout runs on a coarse ~0.5 s clock.
 */
export async function probe(
  pool: Dispatcher,
  path: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<ProbeResult> {
  if (signal.aborted) return { kind: 'aborted', status: null, errorCode: null };
  const attempt = new AbortController();
  const onCheckAbort = (): void => attempt.abort();
  signal.addEventListener('abort', onCheckAbort, { once: true });
  const timer = setTimeout(() => attempt.abort(), timeoutMs);
  let status: number | null = null;
  try {
    const response = await pool.request({ method: 'GET', path, headers, signal: attempt.signal });
    status = response.statusCode;
    // Read the (small) body to its end: a connection closed mid-response is not an answer,
    // and only a fully read response returns its connection to the keep-alive pool.
    await response.body.text();
    return { kind: classifyStatus(status), status, errorCode: null };
  } catch (err) {
    if (signal.aborted) return { kind: 'aborted', status, errorCode: null };
    return { kind: 'error', status, errorCode: attempt.signal.aborted ? PROBE_TIMEOUT : errorCodeOf(err) };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onCheckAbort);
  }
}
