// The hand-built check body is exactly JSON.stringify of the same fields, escaping included.
import t from 'tap';
import { checkBody } from '../sidecar/http/check-body.js';
import type { PeerReport } from '../sidecar/model.js';

const peers: PeerReport[] = [
  { name: 'apigw-7d9f8-abcde', outcome: 'synced', attempts: 1, lastStatus: 200, lastError: null, syncedAtMs: 0.8 },
  { name: 'fd00::2', outcome: 'missing', attempts: 20, lastStatus: 401, lastError: null, syncedAtMs: null },
  { name: 'odd"name\\with\u0001controls', outcome: 'error', attempts: 3, lastStatus: null, lastError: 'ECONNREFUSED', syncedAtMs: null },
  { name: 'x', outcome: 'timeout', attempts: 5, lastStatus: null, lastError: 'PROBE_TIMEOUT "quoted"', syncedAtMs: null },
  { name: 'y', outcome: 'departed', attempts: 2, lastStatus: 503, lastError: null, syncedAtMs: null },
];
/** What the API answers of a peer (openapi.json PeerReport): syncedAtMs feeds metrics only. */
const answered = (list: readonly PeerReport[]) => list.map(({ syncedAtMs: _metricsOnly, ...p }) => p);

t.test('equal to JSON.stringify of the same fields, in the same order', async (t) => {
  for (const [shared, cached, list, duration] of [
    [false, false, peers, 12.34],
    [true, false, peers.slice(0, 1), 0.01],
    [false, true, [], 0],
  ] as const) {
    const expected = JSON.stringify({ checkId: 'a1b-2c', verdict: 'Partialy', durationMs: duration, shared, cached, peers: answered(list) });
    t.equal(checkBody('a1b-2c', 'Partialy', duration, shared, cached, list), expected);
  }
  t.same(JSON.parse(checkBody('a-1', 'Synced', 1, false, false, peers)).peers[2].name, 'odd"name\\with\u0001controls', 'names are escaped');
});
