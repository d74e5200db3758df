// Renders a Deployment's spec.selector as a labelSelector query string, so the API server
// sends only this Deployment's ReplicaSets and pods. Ownership is still checked client-side
// (peers-from-objects.ts): a selector narrows traffic, ownerReferences decide membership.
import type { LabelSelector } from './objects.js';

export interface RenderedSelector {
  /** The query value; '' selects everything (never used for an apps/v1 Deployment, whose selector is required). */
  readonly query: string;
  /** matchExpressions that could not be rendered and were left out (the selector is then wider, never narrower). */
  readonly skipped: readonly string[];
}

// Label keys and values are restricted by the API server to characters that need no quoting.
const SAFE = /^[A-Za-z0-9._\-/]*$/;

export function renderSelector(selector: LabelSelector): RenderedSelector {
  const parts: string[] = [];
  const skipped: string[] = [];
  for (const key of Object.keys(selector.matchLabels).sort()) {
    parts.push(`${key}=${selector.matchLabels[key] ?? ''}`);
  }
  for (const e of selector.matchExpressions) {
    const ok = SAFE.test(e.key) && e.values.every((v) => SAFE.test(v));
    const values = [...e.values].sort().join(',');
    if (ok && e.operator === 'In' && e.values.length > 0) parts.push(`${e.key} in (${values})`);
    else if (ok && e.operator === 'NotIn' && e.values.length > 0) parts.push(`${e.key} notin (${values})`);
    else if (ok && e.operator === 'Exists') parts.push(e.key);
    else if (ok && e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    // Leaving a requirement out widens the selection; ownerReferences still filter it exactly.
    else skipped.push(`${e.key} ${e.operator} (${values})`);
  }
  return { query: parts.join(','), skipped };
}
