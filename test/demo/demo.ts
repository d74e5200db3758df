// `npm run demo`: the sidecar on an embedded default. Five simulated apigw replicas on loopback
// addresses (same port, like pods), each pod's token API and zone_sync played by a relay that
// hands every written key to the replicas, and the built sidecar in front of them as replica 0's
// sidecar, with the canary on. Sends one check per scenario and prints the verdicts as a table;
// then keeps everything serving until Ctrl-C, so the printed commands can be tried by hand, and
// after a while cuts one replica off from replication, which the canary then names.
// `npm run demo -- --once` prints the table and exits (scripts, the test suite).
import { KeyvalsRelay } from '../support/keyvals-relay.js';
import { startReplicas, type ReplicaServer } from '../support/replica-server.js';
import { peersEnv } from '../support/sidecar-app.js';
import { startSidecarProcess, type SidecarProcess } from '../support/sidecar-process.js';
import { waitFor } from '../support/wait.js';

const ONCE = process.argv.includes('--once');
const CANARY_INTERVAL_MS = 2_000;
const CANARY_TIMEOUT_MS = 1_000;
/** How long the demo serves before one replica stops receiving writes. */
const CUT_AFTER_MS = 10_000;
const CUT_OFF = 3;
/** A token every replica holds, for the curl line. */
const DEMO_TOKEN = 'demo';

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

async function scenarioTable(sidecar: SidecarProcess, replicas: readonly ReplicaServer[]): Promise<void> {
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
  for (const r of replicas) r.behaviour = { kind: 'store' };
  console.log('\nAll settings are the defaults but the canary. The origin (apigw-0) is never probed. Timeout = a replica was still unresolved at the deadline (SYNCER_HARD_TIMEOUT_MS).');
}

interface CanaryStatus {
  readonly result: string;
  readonly notArrived: ReadonlyArray<{ name: string; result: string }>;
}

/** Prints each change of the canary's verdict (from /readyz) until `stop` resolves. */
async function followCanary(opsUrl: string, stop: Promise<void>, cutAt: () => number | undefined): Promise<void> {
  let last = '';
  let stopped = false;
  void stop.then(() => (stopped = true));
  while (!stopped) {
    const ready = (await (await fetch(`${opsUrl}/readyz`)).json()) as { canary?: CanaryStatus };
    const c = ready.canary;
    const said = c === undefined ? '' : c.result === 'synced' ? 'every replica got the key' : `not reached: ${c.notArrived.map((p) => `${p.name} (${p.result})`).join(', ')}`;
    if (said !== '' && said !== last) {
      const cut = cutAt();
      const since = cut === undefined ? '' : ` — ${((performance.now() - cut) / 1000).toFixed(1)} s after the cut`;
      console.log(`canary: ${said}${since}`);
      last = said;
    }
    await Promise.race([stop, new Promise((resolve) => setTimeout(resolve, 250))]);
  }
}

async function main(): Promise<void> {
  const replicas = await startReplicas(5, { net: '127.0.9.', first: 10, port: 18090 });
  /** Replicas zone_sync no longer reaches. */
  const cutOff = new Set<ReplicaServer>();
  const relay = await KeyvalsRelay.start(({ key }) => {
    for (const r of replicas) if (!cutOff.has(r)) r.give(key);
    return 201;
  });
  let sidecar: SidecarProcess | undefined;
  try {
    const env = {
      POD_NAME: 'apigw-0',
      POD_NAMESPACE: 'demo',
      SYNCER_DISCOVERY: 'static',
      SYNCER_PEERS: peersEnv(replicas, (i) => `apigw-${i}`),
      SYNCER_CANARY_INTERVAL_MS: String(CANARY_INTERVAL_MS),
      SYNCER_CANARY_TIMEOUT_MS: String(CANARY_TIMEOUT_MS),
      SYNCER_CANARY_URL: relay.url,
      LOG_LEVEL: 'info', // the harness learns the listeners from the 'listening' line
    };
    console.log(`apigw-syncer demo: 5 simulated replicas and the built sidecar (dist/bundle/apigw-syncer.mjs on Node ${process.version})`);
    for (const r of replicas) console.log(`  replica ${r.host}:${r.port}`);
    console.log(`  token API of apigw-0 (+ zone_sync to the others): ${relay.url}`);
    console.log(`  sidecar env: ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
    sidecar = await startSidecarProcess(env);
    const { apiUrl, opsUrl } = sidecar;
    await waitFor(async () => (await fetch(`${opsUrl}/readyz`)).status === 200, 'sidecar readiness');
    await scenarioTable(sidecar, replicas);
    if (ONCE) return;

    replicas.forEach((r) => r.give(DEMO_TOKEN));
    console.log(`\nServing until Ctrl-C. Try:
  curl -i -H 'X-Auth-Token: ${DEMO_TOKEN}' ${apiUrl}/v1/synced        # every replica holds it: Synced
  curl -i -H 'X-Auth-Token: not-issued' ${apiUrl}/v1/synced  # none does: NotSynced, after ~1 s
  curl -s ${opsUrl}/metrics | grep -E '^syncer_(peer|canary)_'   # per-peer series
  curl -s ${opsUrl}/readyz                                        # the canary's last run
The canary writes a key to apigw-0's token API every ${CANARY_INTERVAL_MS / 1000} s and probes the others for it.
In ${CUT_AFTER_MS / 1000} s apigw-${CUT_OFF} stops receiving writes (its zone_sync breaks): the canary names it within two intervals.\n`);

    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    let cutAt: number | undefined;
    const cut = setTimeout(() => {
      cutOff.add(replicas[CUT_OFF]!);
      cutAt = performance.now();
      console.log(`apigw-${CUT_OFF} stops receiving writes now.`);
    }, CUT_AFTER_MS);
    await followCanary(opsUrl, stopped, () => cutAt);
    clearTimeout(cut);
    console.log('\nstopping');
  } finally {
    const code = await sidecar?.stop();
    await relay.close();
    await Promise.all(replicas.map((r) => r.close()));
    // After Ctrl-C the test harness has already killed the sidecar (processes.ts): its exit
    // status says nothing then.
    if (ONCE && code !== undefined && code !== 0) process.exitCode = 1;
  }
}

await main();
