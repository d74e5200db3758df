// Validation of a check request's headers: pure, so every rule has a table test.

export const MAX_TOKEN_BYTES = 8 * 1024;
// Visible ASCII only: tokens are header-safe strings; anything else is a client bug or an attack.
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

export type CheckRequest =
  | { readonly ok: true; readonly token: string; readonly origin: string; readonly strict: boolean }
  | { readonly ok: false; readonly error: string };

export function parseCheckRequest(
  token: string | string[] | undefined,
  origin: string | string[] | undefined,
  defaultOrigin: string,
  query = '',
): CheckRequest {
  const params = new URLSearchParams(query);
  const strictParam = params.get('strict');
  if (strictParam !== null && strictParam !== 'true' && strictParam !== 'false') return { ok: false, error: 'strict must be true or false' };
  const strict = strictParam === 'true';
  if (Array.isArray(token) || Array.isArray(origin)) return { ok: false, error: 'each header may be sent only once' };
  if (token === undefined) return { ok: false, error: 'X-Auth-Token header is required' };
  if (token === '') return { ok: false, error: 'X-Auth-Token is empty' };
  if (token.length > MAX_TOKEN_BYTES) return { ok: false, error: `X-Auth-Token is longer than ${MAX_TOKEN_BYTES} bytes` };
  if (!VISIBLE_ASCII.test(token)) return { ok: false, error: 'X-Auth-Token must be visible ASCII (no spaces or control characters)' };
  if (origin === undefined || origin === '') return { ok: true, token, origin: defaultOrigin, strict };
  if (origin.length > 253 || !VISIBLE_ASCII.test(origin)) return { ok: false, error: 'X-Nginx-Origin must be a pod name or IP' };
  return { ok: true, token, origin, strict };
}
