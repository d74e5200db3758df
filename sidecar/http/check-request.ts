// Validation of a check request's headers and query: pure, so every rule has a table test.
import type { RejectReason } from '../model.js';

export const MAX_TOKEN_BYTES = 8 * 1024;
export const MAX_ORIGIN_LENGTH = 253;
// Visible ASCII only: tokens are header-safe strings; anything else is a client bug or an attack.
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

export type CheckRequest =
  | { readonly ok: true; readonly token: string; readonly origin: string; readonly strict: boolean }
  | { readonly ok: false; readonly reason: RejectReason; readonly error: string };

function bad(reason: RejectReason, error: string): CheckRequest {
  return { ok: false, reason, error };
}

export function parseCheckRequest(
  token: string | string[] | undefined,
  origin: string | string[] | undefined,
  defaultOrigin: string,
  query = '',
): CheckRequest {
  let strict = false;
  // The common query is none at all: no URLSearchParams for it.
  if (query !== '') {
    const strictParam = new URLSearchParams(query).get('strict');
    if (strictParam !== null && strictParam !== 'true' && strictParam !== 'false') return bad('bad_query', 'strict must be true or false');
    strict = strictParam === 'true';
  }
  if (Array.isArray(token)) return bad('bad_token', 'X-Auth-Token may be sent only once');
  if (Array.isArray(origin)) return bad('bad_origin', 'X-Nginx-Origin may be sent only once');
  if (token === undefined) return bad('bad_token', 'X-Auth-Token header is required');
  if (token === '') return bad('bad_token', 'X-Auth-Token is empty');
  if (token.length > MAX_TOKEN_BYTES) return bad('bad_token', `X-Auth-Token is longer than ${MAX_TOKEN_BYTES} bytes`);
  if (!VISIBLE_ASCII.test(token)) return bad('bad_token', 'X-Auth-Token must be visible ASCII (no spaces or control characters)');
  if (origin === undefined || origin === '') return { ok: true, token, origin: defaultOrigin, strict };
  if (origin.length > MAX_ORIGIN_LENGTH || !VISIBLE_ASCII.test(origin)) return bad('bad_origin', 'X-Nginx-Origin must be a pod name or IP');
  return { ok: true, token, origin, strict };
}
