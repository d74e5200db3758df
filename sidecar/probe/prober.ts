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

/** Abort reasons, made once: a reason object per abort would cost a stack trace each time. */
export const DEADLINE = new Error('check deadline');
const TIMED_OUT = new Error('probe timeout');

/**
 * Probes once. `attempt` is aborted with DEADLINE when the check's deadline passes; this function
 * aborts it itself after `timeoutMs` (connect, headers and body together): our own timer, because
 * undici's headersTimeout runs on a coarse ~0.5 s clock.
 */
export async function probe(
  pool: Dispatcher,
  path: string,
  headers: Readonly<Record<string, string>>,
  attempt: AbortController,
  timeoutMs: number,
): Promise<ProbeResult> {
  const timer = setTimeout(() => attempt.abort(TIMED_OUT), timeoutMs);
  let status: number | null = null;
  try {
    const response = await pool.request({ method: 'GET', path, headers, signal: attempt.signal });
    status = response.statusCode;
    // Read the (small) body to its end: a connection closed mid-response is not an answer,
    // and only a fully read response returns its connection to the keep-alive pool.
    await response.body.text();
    return { kind: classifyStatus(status), status, errorCode: null };
  } catch (err) {
    const reason: unknown = attempt.signal.aborted ? attempt.signal.reason : undefined;
    if (reason === DEADLINE) return { kind: 'aborted', status, errorCode: null };
    return { kind: 'error', status, errorCode: reason === TIMED_OUT ? PROBE_TIMEOUT : errorCodeOf(err) };
  } finally {
    clearTimeout(timer);
  }
}
