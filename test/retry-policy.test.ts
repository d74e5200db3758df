import t from 'tap';
import { DEADLINE_MARGIN_MS, nextStep, probeTimes, retryDelay, retryWindowMs, type RetrySettings } from '../sidecar/check/retry-policy.js';

const s: RetrySettings = { delayMs: 16, backoff: 1.2, maxDelayMs: 200, jitter: 0.2, maxRetries: 30 };
const mid = () => 0.5; // no jitter
const low = () => 0; // -20 %
const high = () => 1; // +20 %
const WINDOW = retryWindowMs(1500, 250);
/** Delays are computed in floating point ((1.2 − 1) × 500 = 99.99999999999997): compare to the µs. */
const us = (ms: number): number => Math.round(ms * 1000) / 1000;

t.test('the delay is delayMs early on, then (backoff − 1) × the time waited, capped', async (t) => {
  // elapsed ms → delay ms, no jitter: flat at 16 until 0.2 × elapsed passes 16 (80 ms), then proportional.
  const table: Array<[number, number]> = [
    [0, 16],
    [40, 16],
    [80, 16],
    [100, 20],
    [250, 50],
    [500, 100],
    [1000, 200],
    [5000, 200],
  ];
  t.same(
    table.map(([elapsed]) => us(retryDelay(elapsed, s, mid))),
    table.map(([, delay]) => delay),
  );
  t.equal(retryDelay(0, { ...s, backoff: 1 }, mid), 16, 'a backoff of 1 keeps the delay constant');
  t.equal(retryDelay(10_000, { ...s, backoff: 1 }, mid), 16);
});

t.test('jitter spreads each delay by ± the configured fraction, after the cap', async (t) => {
  t.equal(retryDelay(0, s, low), 12.8);
  t.equal(retryDelay(0, s, high), 19.2);
  t.equal(retryDelay(5000, s, high), 240, 'the cap is applied before jitter');
  t.equal(retryDelay(0, { ...s, jitter: 0 }, high), 16);
});

t.test('the retry window ends one probe timeout and a margin before the deadline', async (t) => {
  t.equal(DEADLINE_MARGIN_MS, 100);
  t.equal(retryWindowMs(1500, 250), 1150);
  t.equal(retryWindowMs(600, 150), 350);
});

t.test('what follows each probe result', async (t) => {
  t.same(nextStep('synced', 1, 0, s, WINDOW, mid), { kind: 'resolve', outcome: 'synced' });
  t.same(nextStep('departed', 3, 40, s, WINDOW, mid), { kind: 'resolve', outcome: 'departed' }, 'a peer that left is done');
  t.same(nextStep('unexpected', 1, 0, s, WINDOW, mid), { kind: 'resolve', outcome: 'error' }, 'misconfiguration stops at once');
  t.same(nextStep('missing', 1, 0, s, WINDOW, mid), { kind: 'retry', delayMs: 16 });
  const step = nextStep('error', 2, 500, s, WINDOW, mid);
  t.same(step.kind === 'retry' ? { ...step, delayMs: us(step.delayMs) } : step, { kind: 'retry', delayMs: 100 });
  t.same(nextStep('missing', 31, 300, s, WINDOW, mid), { kind: 'resolve', outcome: 'missing' }, 'after maxRetries retries the last answer stands');
  t.same(nextStep('error', 31, 300, s, WINDOW, mid), { kind: 'resolve', outcome: 'error' });
  t.same(nextStep('missing', 1, 0, { ...s, maxRetries: 0 }, WINDOW, mid), { kind: 'resolve', outcome: 'missing' }, 'zero retries: one probe only');
});

t.test('no retry starts past the window: a missing token is missing, not a timeout', async (t) => {
  t.equal(nextStep('missing', 5, 958, s, WINDOW, mid).kind, 'retry', '958 + 191.6 ≤ 1150: still inside');
  t.same(nextStep('missing', 5, 959, s, WINDOW, mid), { kind: 'resolve', outcome: 'missing' }, '959 + 191.8 > 1150');
  t.same(nextStep('error', 5, 959, s, WINDOW, mid), { kind: 'resolve', outcome: 'error' }, 'a 5xx or a refused connection: the same');
  t.equal(nextStep('error', 5, 1300, s, WINDOW, mid, true).kind, 'retry', 'no answer at all (probe timeout): retried until the deadline cuts it');
  t.same(nextStep('error', 31, 1300, s, WINDOW, mid, true), { kind: 'resolve', outcome: 'error' }, 'maxRetries still caps it');
  t.same(nextStep('missing', 1, 0, s, 10, mid), { kind: 'resolve', outcome: 'missing' }, 'a window shorter than one delay: no retry');
  t.same(nextStep('missing', 1, 0, s, WINDOW, high), { kind: 'retry', delayMs: 19.2 }, 'the jittered delay is the one checked');
});

t.test('the default schedule: probes every 16 ms for the first ~80 ms, 20 probes up to the window', async (t) => {
  const times = probeTimes(s, WINDOW).map((ms) => Math.round(ms));
  t.same(times, [0, 16, 32, 48, 64, 80, 96, 115, 138, 166, 199, 239, 287, 344, 413, 495, 594, 713, 856, 1027]);
  t.ok(times.every((ms) => ms <= WINDOW), 'no probe starts after the window');
  const gapsUntil100 = times.filter((ms) => ms <= 115).map((ms, i, a) => (i === 0 ? 0 : ms - a[i - 1]!));
  t.ok(Math.max(...gapsUntil100) <= 19, `a token landing within 100 ms is seen ≤ 19 ms later (gaps ${gapsUntil100.join(', ')})`);
  t.same(probeTimes({ ...s, maxRetries: 3 }, WINDOW).map(Math.round), [0, 16, 32, 48], 'maxRetries caps the count');
});
