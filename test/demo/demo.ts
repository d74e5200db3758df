// `npm run demo`: the sidecar on an embedded default. Five simulated apigw replicas on loopback
// addresses (same port, like pods), the built sidecar in front of them as replica 0's sidecar,
// and one check per scenario; prints the verdicts as a table and exits.
import { startReplicas, type ReplicaServer } from '../support/replica-server.js';
import { peersEnv } from '../support/sidecar-app.js';
import { startSidecarProcess, type SidecarProcess } from '../support/sidecar-process.js';
import { waitFor } from '../support/wait.js';

interface Scenario {
  readonly name: string;
  /** Arranges the replicas (1..4; 0 is the origin) for `token`. */
  readonly arrange: (replicas: readonly ReplicaServer[], token: string) => void;
}

const scenarios: readonly Scenario[] = [
  { name: 'token already on every replica', arrange: (r, tok) => r.forEach((x) => x.give(tok)) },
  { name: 'replication lag of 120 ms', arrange: (r, tok) => r.forEach((x, i) => x.give(tok, i === 0 ? 0 : 120)) },
  { name: 'one replica never receives it', arrange: (r, tok) => r.forEach((x, i) => i !== 4 && x.give(tok)) },
  { name: 'only one other replica has it', arrange: (r, tok) => r.forEach((x, i) => i <= 1 && x.give(tok)) },
  {
    name: 'one replica hangs (no answer)',
    arrange: (r, tok) => {
      r.forEach((x) => x.give(tok));
      r[3]!.behaviour = { kind: 'hang' };
    },
  },
];

function row(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
}

async function main(): Promise<void> {
  const replicas = await startReplicas(5, { net: '127.0.9.', first: 10, port: 18090 });
  let sidecar: SidecarProcess | undefined;
  try {
    const env = {
      POD_NAME: 'apigw-0',
      POD_NAMESPACE: 'demo',
      SYNCER_DISCOVERY: 'static',
      SYNCER_PEERS: peersEnv(replicas, (i) => `apigw-${i}`),
      LOG_LEVEL: 'info', // the harness learns the listeners from the 'listening' line
    };
    console.log(`apigw-syncer demo: 5 simulated replicas and the built sidecar (dist/bundle/apigw-syncer.mjs on Node ${process.version})`);
    for (const r of replicas) console.log(`  replica ${r.host}:${r.port}`);
    console.log(`  sidecar env: ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
    sidecar = await startSidecarProcess(env);
    const ops = sidecar.opsUrl;
    await waitFor(async () => (await fetch(`${ops}/readyz`)).status === 200, 'sidecar readiness');

    const widths = [32, 11, 9, 60];
    console.log(row(['scenario', 'verdict', 'time', 'peers (outcome × attempts)'], widths));
    console.log(row(widths.map((w) => '-'.repeat(w)), widths));
    for (const [i, scenario] of scenarios.entries()) {
      const token = `demo-token-${i}-${Math.random().toString(36).slice(2)}`;
      for (const r of replicas) r.behaviour = { kind: 'store' };
      scenario.arrange(replicas, token);
      const reply = await sidecar.check(token);
      const peers = (reply.body.peers ?? []).map((p) => `${p.name}:${p.outcome}×${p.attempts}`).join(' ');
      console.log(row([scenario.name, reply.tokenStatus ?? `HTTP ${reply.status}`, `${reply.elapsedMs.toFixed(0)} ms`, peers], widths));
    }
    console.log('\nAll settings are the defaults. The origin (apigw-0) is never probed. Timeout = a replica was still unresolved at the deadline (SYNCER_HARD_TIMEOUT_MS).');
    console.log(`Metrics: ${ops}/metrics; a check by hand while this runs: curl -i -H 'X-Auth-Token: t' ${sidecar.apiUrl}/v1/synced`);
  } finally {
    const code = await sidecar?.stop();
    await Promise.all(replicas.map((r) => r.close()));
    if (code !== undefined && code !== 0) process.exitCode = 1;
  }
}

await main();
