// The built program holds V8's young generation at its initial size, however it is started (here
// as `node <bundle>`, no flag): a burst of checks does not grow it (sidecar/young-generation.ts).
import t from 'tap';
import { Pool } from 'undici';
import { startReplicas } from './support/replica-server.js';
import { peersEnv } from './support/sidecar-app.js';
import { startSidecarProcess } from './support/sidecar-process.js';
import { waitFor } from './support/wait.js';

const MiB = 1024 * 1024;

t.test('a burst of checks leaves the young generation at the size it started with', async (t) => {
  const replicas = await startReplicas(3, { net: '127.0.1.', first: 60, port: 18083 });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const sidecar = await startSidecarProcess({ POD_NAME: 'pod-0', POD_NAMESPACE: 'test', SYNCER_DISCOVERY: 'static', SYNCER_PEERS: peersEnv(replicas), SYNCER_SYNCED_TTL_MS: '0' });
  t.teardown(() => sidecar.stop('SIGKILL'));
  await waitFor(async () => (await fetch(`${sidecar.opsUrl}/readyz`)).status === 200, 'readiness');
  const youngBytes = async (): Promise<number> => {
    const text = await (await fetch(`${sidecar.opsUrl}/metrics`)).text();
    return Number(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)$/m.exec(text)?.[1] ?? NaN);
  };
  const before = await youngBytes();
  t.ok(before > 0, `young generation at start: ${(before / MiB).toFixed(1)} MiB`);
  const tokens = Array.from({ length: 50 }, (_, i) => `young-${i}`);
  for (const r of replicas) for (const token of tokens) r.give(token);
  const pool = new Pool(sidecar.apiUrl, { connections: 100 });
  t.teardown(() => pool.close());
  let answered = 0;
  // Rounds of 100 checks at once (within SYNCER_MAX_IN_FLIGHT): each allocates far beyond the young generation.
  for (let round = 0; round < 20; round++) {
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const res = await pool.request({ method: 'GET', path: '/v1/synced', headers: { 'x-auth-token': tokens[i % tokens.length]! } });
        await res.body.text();
        if (res.statusCode === 200) answered++;
      }),
    );
  }
  t.equal(answered, 2000, 'every check answered');
  const after = await youngBytes();
  // Without the setting it grows to several times its start size in this burst (13 MiB from 4 here).
  t.ok(after <= before, `young generation after 2,000 checks: ${(after / MiB).toFixed(1)} MiB (was ${(before / MiB).toFixed(1)})`);
});
