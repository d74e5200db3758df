// Cardinality, measured: the series a sidecar exports at 3, 31 and 99 peers, counted in its live
// /metrics with everything on (the canary too) after checks and canary runs have touched every
// peer. Each peer costs the same fixed number of series, and the README's table holds exactly
// these figures.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { KeyvalsRelay } from './support/keyvals-relay.js';
import { http } from './support/net.js';
import { startReplicas, type ReplicaServer } from './support/replica-server.js';
import { repoRoot } from './support/repo-root.js';
import { peersEnv, sendCheck, startSidecar } from './support/sidecar-app.js';
import { waitFor } from './support/wait.js';

const SIZES = [3, 31, 99] as const;
const TABLE_HEADER = '| peers | series per peer | per-peer series of one sidecar | per-peer series of the deployment (peers + 1 sidecars) |';

interface Count {
  readonly peers: number;
  readonly perPeer: number;
  /** The other syncer_* samples (closed label sets). */
  readonly others: readonly string[];
}

/** Samples in a Prometheus text exposition: lines that are not comments. */
const samples = (text: string): string[] => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

async function measure(peers: number): Promise<Count> {
  const replicas: ReplicaServer[] = await startReplicas(peers + 1, { net: '127.0.122.', first: 10, port: 18122 });
  const relay = await KeyvalsRelay.start(({ key }) => {
    replicas.forEach((r) => r.give(key));
    return 201;
  });
  const sidecar = await startSidecar({
    SYNCER_PEERS: peersEnv(replicas),
    SYNCER_CANARY_INTERVAL_MS: '1000',
    SYNCER_CANARY_TIMEOUT_MS: '800',
    SYNCER_CANARY_URL: relay.url,
    SYNCER_SYNCED_TTL_MS: '0',
  }, undefined, { memoryLimit: () => 320 * 1024 * 1024 });
  try {
    // Every kind of per-peer series has a value: a check that reached everyone, one that
    // missed everyone, and a canary run.
    replicas.forEach((r) => r.give('everywhere'));
    await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'everywhere' });
    await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'nowhere' });
    await waitFor(async () => /^syncer_canary_runs_total\{result="synced"\} [1-9]/m.test(await sidecar.app.telemetry.metrics()), 'a canary run', { timeoutMs: 20_000 });
    const text = (await http(`${sidecar.opsUrl}/metrics`)).body;
    const syncer = samples(text).filter((l) => l.startsWith('syncer_'));
    return { peers, perPeer: syncer.filter((l) => /[{,]peer="/.test(l)).length, others: syncer.filter((l) => !/[{,]peer="/.test(l)) };
  } finally {
    await sidecar.stop();
    await relay.close();
    await Promise.all(replicas.map((r) => r.close()));
  }
}

const counts: Count[] = [];
t.before(async () => {
  for (const n of SIZES) counts.push(await measure(n));
});

t.test('every peer costs the same fixed number of series; nothing else grows with the peer count', async (t) => {
  const perPeer = counts.map((c) => c.perPeer / c.peers);
  t.ok(perPeer.every((p) => p === perPeer[0]), `series per peer at ${SIZES.join(', ')} peers: ${perPeer.join(', ')}`);
  t.equal(perPeer[0], 18, '13 from the checks (7 buckets + Inf, sum, count; missing, error, timeout) + 5 from the canary (4 results, 1 delay)');
  // The rest depends on what happened (a verdict's series appear with its first check), never on
  // which peers there are: no label of theirs names a peer.
  for (const c of counts) {
    t.notOk(c.others.some((l) => /pod-[0-9]/.test(l)), `${c.peers} peers: ${c.others.length} other syncer_* series, none naming a peer`);
  }
});

t.test("the README's table holds these measurements", async (t) => {
  const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
  const at = readme.indexOf(TABLE_HEADER);
  t.ok(at >= 0, 'the table is in the README');
  const rows = readme.slice(at).split('\n').slice(2).filter((l) => l.startsWith('|'));
  const expected = counts.map((c) => `| ${c.peers} | ${c.perPeer / c.peers} | ${c.perPeer} | ${(c.peers + 1) * c.perPeer} |`);
  for (const row of expected) t.comment(row);
  t.same(rows.slice(0, SIZES.length), expected);
});
