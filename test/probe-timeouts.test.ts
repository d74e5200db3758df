// The shared timeout sweep with an injected clock: a probe times out once timeoutMs has passed
// since it started — at that instant, not before — in start order; one that settled first never.
import t from 'tap';
import { ProbeTimeouts, type Timed } from '../sidecar/probe/probe-timeouts.js';
import { captureUnexpected } from './support/unexpected.js';
import { waitFor } from './support/wait.js';

const TIMEOUT_MS = 20;

/** A running probe as the sweep sees it: told timedOut(), it settles and leaves the list. */
function timed(name: string, log: string[]): Timed {
  const entry: Timed = {
    expiresAt: 0,
    sweep: undefined,
    prevInSweep: undefined,
    nextInSweep: undefined,
    timedOut() {
      log.push(name);
      entry.sweep?.remove(entry);
    },
  };
  return entry;
}

t.test('a probe times out when timeoutMs has passed since it started, not a moment before, in start order', async (t) => {
  let now = 1_000;
  // The sweep reads the clock when its timer fires (and again to re-arm it): reads count its rounds.
  let reads = 0;
  const sweep = new ProbeTimeouts(TIMEOUT_MS, () => {
    reads++;
    return now;
  });
  t.teardown(() => sweep.close());
  const log: string[] = [];
  const [a, b, settled, c] = ['a', 'b', 'settled', 'c'].map((name) => timed(name, log)) as [Timed, Timed, Timed, Timed];
  sweep.add(a);
  sweep.add(settled);
  now += 1;
  sweep.add(b);
  sweep.add(c);
  sweep.remove(settled);
  now = 1_000 + TIMEOUT_MS - 1;
  const readsBefore = reads;
  await waitFor(() => reads >= readsBefore + 2, 'a sweep while the clock stands just short of the first expiry');
  t.same(log, [], 'nothing expires before its time');
  now = 1_000 + TIMEOUT_MS;
  await waitFor(() => log.length > 0, 'a to time out at exactly its expiry');
  // Told in one sweep: whatever else was due was told in the same turn.
  await new Promise((resolve) => setImmediate(resolve));
  t.same(log, ['a'], 'b started a millisecond later and is not due yet');
  now += 1;
  await waitFor(() => log.length === 3, 'b and c to time out');
  t.same(log, ['a', 'b', 'c'], 'in start order; the settled one never');
});

t.test('a probe whose timeout throws is reported and dropped; those behind it, and later ones, still time out', async (t) => {
  const reports = captureUnexpected(t);
  let now = 0;
  const sweep = new ProbeTimeouts(TIMEOUT_MS, () => now);
  t.teardown(() => sweep.close());
  const log: string[] = [];
  const [a, b, c] = ['a', 'b', 'c'].map((name) => timed(name, log)) as [Timed, Timed, Timed];
  // A bug: it throws before it settles, so it would stay at the head of the list.
  a.timedOut = () => {
    log.push('a');
    throw new Error('planted in a');
  };
  sweep.add(a);
  sweep.add(b);
  now += TIMEOUT_MS;
  await waitFor(() => log.length >= 2, 'both timed out');
  t.same(log, ['a', 'b'], 'the one behind it timed out in the same sweep');
  t.match(reports, [{ source: 'timer', where: 'probe timeout sweep', err: { message: 'planted in a' } }]);
  sweep.add(c);
  now += TIMEOUT_MS;
  await waitFor(() => log.includes('c'), 'a later probe timed out: the sweep is armed again');
  t.same(log, ['a', 'b', 'c'], 'the throwing probe was dropped, not swept again');
});
