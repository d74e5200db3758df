// The retry schedule of list/watch failures: capped exponential with equal jitter.
import t from 'tap';
import { API_BACKOFF, Backoff, backoffDelay } from '../sidecar/discovery/kubernetes/backoff.js';

t.test('equal jitter: each delay lies in [ceiling/2, ceiling], ceilings double up to the cap', async (t) => {
  const low = Array.from({ length: 10 }, (_, i) => backoffDelay(i, API_BACKOFF, () => 0));
  const high = Array.from({ length: 10 }, (_, i) => backoffDelay(i, API_BACKOFF, () => 0.999999));
  t.same(low, [125, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000, 5000], 'random 0 → half the ceiling, never zero');
  t.same(high, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000], 'random → 1 → the ceiling, capped at maxMs');
});

t.test('a success resets the schedule', async (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 1_000, factor: 2 }, () => 1);
  t.same([b.next(), b.next(), b.next()], [100, 200, 400]);
  t.equal(b.failures, 3);
  b.reset();
  t.equal(b.next(), 100);
});

t.test('huge attempt numbers stay finite and capped', async (t) => {
  t.equal(backoffDelay(10_000, API_BACKOFF, () => 1), API_BACKOFF.maxMs);
});

t.test('many replicas retrying spread over the upper half of the window', async (t) => {
  let seed = 42;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const delays = Array.from({ length: 1000 }, () => backoffDelay(8, API_BACKOFF, random));
  t.ok(Math.min(...delays) >= 5_000 && Math.max(...delays) <= 10_000);
  const buckets = new Set(delays.map((d) => Math.floor(d / 500)));
  t.ok(buckets.size >= 10, 'delays are spread, not in lockstep');
});
