// The retry window's edge: a retry whose start falls exactly on the window's end still goes out
// (its answer then arrives DEADLINE_MARGIN_MS before the deadline at the latest); a moment later, none does.
import t from 'tap';
import { nextStep, retryWindowMs, type RetrySettings } from '../sidecar/check/retry-policy.js';

// Constant 50 ms delays, no jitter: the arithmetic is exact.
const flat: RetrySettings = { delayMs: 50, backoff: 1, maxDelayMs: 50, jitter: 0, maxRetries: 30 };
const WINDOW = retryWindowMs(1_000, 150); // 750 ms
const noJitter = () => 0.5;

t.test('a retry starting exactly at the end of the window is sent', async (t) => {
  t.equal(WINDOW, 750);
  t.same(nextStep('missing', 3, 700, flat, WINDOW, noJitter), { kind: 'retry', delayMs: 50 }, '700 + 50 = 750: on the edge, inside');
  t.same(nextStep('missing', 3, 701, flat, WINDOW, noJitter), { kind: 'resolve', outcome: 'missing' }, '701 + 50 > 750: outside');
  t.same(nextStep('error', 3, 700, flat, WINDOW, noJitter), { kind: 'retry', delayMs: 50 });
  t.same(nextStep('error', 3, 701, flat, WINDOW, noJitter), { kind: 'resolve', outcome: 'error' });
});
