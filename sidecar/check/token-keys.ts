// What the sidecar keeps in place of a token: digests. The token itself never outlives its request.
// crypto.hash is the one-shot digest: about a third of createHash().update().digest()'s cost.
import { hash } from 'node:crypto';

/** A short, stable fingerprint to follow one token's checks across pods in logs, without revealing it. */
export function tokenFingerprint(token: string): string {
  return hash('sha256', token, 'hex').slice(0, 12);
}

/**
 * The identity of a check: the full SHA-256 of origin and token (a NUL cannot occur in either,
 * so no two pairs collide by concatenation). 32 one-byte characters, the cheapest Map key.
 */
export function checkKey(origin: string, token: string): string {
  return hash('sha256', `${origin}\0${token}`, 'binary');
}
