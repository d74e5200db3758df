import t from 'tap';
import { nextStep, retryBudgetMs, retryDelay, type RetrySettings } from '../sidecar/check/retry-policy.js';

const s: RetrySettings = { delayMs: 10, backoff: 2, maxDelayMs: 200, jitter: 0.2, maxRetries: 3 };
const mid = () => 0.5; // no jitter
const low = () => 0; // -20 %
const high = () => 1; // +20 %

t.test('delays grow by the backoff factor up to the cap', async (t) => {
  t.same([1, 2, 3, 4, 5, 6, 7].map((n) => retryDelay(n, s, mid)), [10, 20, 40, 80, 160, 200, 200]);
});

t.test('jitter spreads each delay by ± the configured fraction', async (t) => {
  t.equal(retryDelay(1, s, low), 8);
  t.equal(retryDelay(1, s, high), 12);
  t.equal(retryDelay(9, s, high), 240, 'the cap is applied before jitter');
  t.equal(retryDelay(1, { ...s, jitter: 0 }, high), 10);
});

t.test('a backoff of 1 keeps the delay constant', async (t) => {
  t.same([1, 5, 9].map((n) => retryDelay(n, { ...s, backoff: 1 }, mid)), [10, 10, 10]);
});

t.test('what follows each probe result', async (t) => {
  t.same(nextStep('synced', 1, s, mid), { kind: 'resolve', outcome: 'synced' });
  t.same(nextStep('unexpected', 1, s, mid), { kind: 'resolve', outcome: 'error' }, 'misconfiguration stops at once');
  t.same(nextStep('missing', 1, s, mid), { kind: 'retry', delayMs: 10 });
  t.same(nextStep('error', 2, s, mid), { kind: 'retry', delayMs: 20 });
  t.same(nextStep('missing', 3, s, mid), { kind: 'retry', delayMs: 40 }, 'third probe = second retry done, one more allowed');
  t.same(nextStep('missing', 4, s, mid), { kind: 'resolve', outcome: 'missing' }, 'after maxRetries retries the last answer stands');
  t.same(nextStep('error', 4, s, mid), { kind: 'resolve', outcome: 'error' });
  t.same(nextStep('missing', 1, { ...s, maxRetries: 0 }, mid), { kind: 'resolve', outcome: 'missing' }, 'zero retries: one probe only');
});

t.test('the retry budget is the sum of the nominal delays', async (t) => {
  t.equal(retryBudgetMs(s), 10 + 20 + 40);
  t.equal(retryBudgetMs({ ...s, maxRetries: 6 }), 10 + 20 + 40 + 80 + 160 + 200);
  t.equal(retryBudgetMs({ ...s, maxRetries: 0 }), 0);
});
