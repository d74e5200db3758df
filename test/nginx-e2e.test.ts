// End to end on real processes: 4 apigw "pods", each = open-source nginx with the shipped
// snippets (clients on 127.0.2.(10+i):18080, the probe server on :18081, the token API on
// loopback) + the real sidecar (its bundle, as shipped) on its own 127.0.0.1 port, all
// listing each other's probe servers in SYNCER_PEERS. A client talks to the origin pod's nginx
// only; replication is played by ReplicationSim through each pod's token API. Asserts what the
// client sees.
import t from 'tap';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { freePort, http, waitForHttp, type HttpResult } from './support/net.js';
import { FAIL_OPEN_PATH, WAIT_STRICT_PATH, removePodDir, startNginxPod, writeToken, type NginxPod } from './support/nginx.js';
import { describeExit, killGroup, livePids } from './support/processes.js';
import { MAIN_JS, startSidecarProcess, type SidecarProcess } from './support/sidecar-process.js';
import { MAX_TOKEN_BYTES } from '../sidecar/http/check-request.js';
import { ReplicationSim, type Lag } from './support/replication-sim.js';
import { boundOf, withLoopDelay } from './support/timing-floor.js';
import { deadline } from './support/wait.js';
import { requirePart } from './support/required.js';

const PODS = 4;
const PORT = 18080;
const PROBE_PORT = 18081;
const HARD_TIMEOUT_MS = 3_000;
// Retries of a 401/refused peer run out after ~10+20+40+22×50 ms ≈ 1.2 s (±20 % jitter), well
// before the hard timeout: a replica that never gets the token ends "missing" (not "timeout"),
// and lags up to ~0.9 s still end "synced". 50 ms between retries bounds the lag overshoot.
const RETRY_ENV = {
  SYNCER_RETRY_DELAY_MS: '10',
  SYNCER_RETRY_BACKOFF: '2',
  SYNCER_RETRY_MAX_DELAY_MS: '50',
  SYNCER_MAX_RETRIES: '25',
  SYNCER_RETRY_JITTER: '0.2',
  SYNCER_PROBE_TIMEOUT_MS: '300',
  // Each check here is about probing: the same token is asked about again and again, so the
  // Synced memo is off (check-memo.test.ts has its own tests).
  SYNCER_SYNCED_TTL_MS: '0',
};
/** Past the target (a deadline, a lag), on top of the floors measured in the same run (timing-floor.ts). */
const MARGIN_MS = 500;

interface Pod {
  readonly name: string;
  readonly host: string;
  nginx: NginxPod;
  readonly sidecar: SidecarProcess;
  /** host:port of the sidecar's check API, as this pod's nginx is configured. */
  readonly sidecarAddr: string;
}

/** What teardown must clean up, registered as soon as each piece exists. */
interface Started {
  readonly nginx: NginxPod[];
  readonly sidecars: SidecarProcess[];
}

const podName = (i: number): string => `apigw-${i}`;
const podHost = (i: number): string => `127.0.2.${10 + i}`;
const peersEnv = Array.from({ length: PODS }, (_, i) => `${podName(i)}=${podHost(i)}:${PROBE_PORT}`).join(',');

/** Pod i's sidecar on 127.0.0.1:port (its nginx already points there), once /readyz answers 200. */
async function startSidecar(i: number, port: number): Promise<SidecarProcess> {
  // Deadline, not a wait: cold starts of 4 node processes on 2 busy cores have taken ~15 s.
  const ready = deadline(60_000);
  const sidecar = await startSidecarProcess(
    {
      POD_NAME: podName(i),
      POD_NAMESPACE: 'e2e',
      POD_IP: podHost(i),
      SYNCER_LISTEN_ADDR: `127.0.0.1:${port}`,
      SYNCER_DISCOVERY: 'static',
      SYNCER_PEERS: peersEnv,
      SYNCER_PROBE_PATH: '/apigw-syncer/probe',
      SYNCER_PROBE_HEADER: 'Authorization',
      SYNCER_PROBE_HEADER_PREFIX: 'Bearer ',
      SYNCER_HARD_TIMEOUT_MS: String(HARD_TIMEOUT_MS),
      LOG_LEVEL: 'info',
      ...RETRY_ENV,
    },
    { timeoutMs: ready.remainingMs() },
  );
  try {
    await waitForHttp(`${sidecar.opsUrl}/readyz`, {
      requestTimeoutMs: 500,
      timeoutMs: ready.remainingMs(),
      intervalMs: 25,
      abortIf: () => {
        const exit = sidecar.process.exitStatus();
        return exit === undefined ? undefined : new Error(`sidecar ${podName(i)} ${describeExit(exit)}`);
      },
    });
  } catch (err) {
    await sidecar.stop('SIGTERM', 500);
    throw new Error(`${(err as Error).message}\n${sidecar.output()}`);
  }
  return sidecar;
}

let tokenSeq = 0;
const tokens: string[] = [];
function newToken(label: string): string {
  const token = `e2e-${label}-${++tokenSeq}-${Math.random().toString(36).slice(2)}`;
  tokens.push(token);
  return token;
}

type Timed = HttpResult & { ms: number };

/** A client request to the origin's nginx, timed. */
async function client(pod: Pod, path: string, token: string): Promise<Timed> {
  const started = performance.now();
  const res = await http(`${pod.nginx.baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { ...res, ms: performance.now() - started };
}

interface Asserts {
  equal(found: unknown, wanted: unknown, message: string): boolean;
}

/**
 * Both policies for one token, asked at once (the sidecar may answer both from one fan-out),
 * checked against what nginx-snippets/README.md promises: fail-open serves whatever the verdict;
 * wait-strict serves only Synced, else 503 + Retry-After: 1; both name the verdict.
 */
async function expectPolicies(t: Asserts, pod: Pod, token: string, verdict: string): Promise<{ open: Timed; strict: Timed }> {
  const [open, strict] = await Promise.all([client(pod, FAIL_OPEN_PATH, token), client(pod, WAIT_STRICT_PATH, token)]);
  const synced = verdict === 'Synced';
  t.equal(open.status, 200, 'fail-open serves');
  t.equal(open.headers['x-token-status'], verdict, `fail-open: X-Token-Status ${verdict}`);
  t.equal(strict.status, synced ? 200 : 503, synced ? 'wait-strict serves' : 'wait-strict rejects with 503');
  t.equal(strict.headers['x-token-status'], verdict, `wait-strict: X-Token-Status ${verdict}`);
  t.equal(strict.headers['retry-after'], synced ? undefined : '1', synced ? 'no Retry-After' : 'Retry-After: 1');
  return { open, strict };
}

interface PeerJson {
  name: string;
  outcome: string;
  attempts: number;
  lastStatus: number | null;
}
interface CheckJson {
  verdict: string;
  durationMs: number;
  peers: PeerJson[];
}

/** Asks a sidecar directly, as nginx would, to read its JSON body. */
async function askSidecar(pod: Pod, token: string): Promise<{ status: number; tokenStatus: string | undefined; json: CheckJson; ms: number }> {
  const started = performance.now();
  const res = await http(`${pod.sidecar.apiUrl}/v1/synced`, { headers: { 'x-auth-token': token, 'x-nginx-origin': pod.name } });
  const ms = performance.now() - started;
  const header = res.headers['x-token-status'];
  return { status: res.status, tokenStatus: typeof header === 'string' ? header : undefined, json: JSON.parse(res.body) as CheckJson, ms };
}

t.test('nginx + sidecar pods end to end', async (t) => {
  requirePart(existsSync(MAIN_JS) ? undefined : `${MAIN_JS} is missing: run \`npm run build\``);
  const pods: Pod[] = [];
  const started: Started = { nginx: [], sidecars: [] };
  const sim: { current?: ReplicationSim } = {};
  t.teardown(async () => {
    sim.current?.stop();
    await Promise.all(started.sidecars.map((s) => s.stop()));
    await Promise.all(started.nginx.map((n) => n.stop()));
    await Promise.all(started.nginx.map((n) => removePodDir(n)));
  });
  const startNginx = async (i: number, sidecarAddr: string, apiPort?: number): Promise<NginxPod> => {
    const nginx = await startNginxPod({ name: podName(i), host: podHost(i), port: PORT, probePort: PROBE_PORT, sidecarAddr, apiPort });
    started.nginx.push(nginx);
    return nginx;
  };

  const startedAt = performance.now();
  await Promise.all(
    Array.from({ length: PODS }, async (_, i) => {
      const sidecarPort = await freePort();
      const sidecarAddr = `127.0.0.1:${sidecarPort}`;
      const nginx = await startNginx(i, sidecarAddr);
      const sidecar = await startSidecar(i, sidecarPort);
      started.sidecars.push(sidecar);
      pods[i] = { name: podName(i), host: podHost(i), nginx, sidecar, sidecarAddr };
    }),
  );
  t.comment(`${PODS} pods (nginx + sidecar) ready in ${Math.round(performance.now() - startedAt)} ms`);
  const [origin, ...others] = pods as [Pod, ...Pod[]];
  const replicas = () => others.map((p) => ({ name: p.name, apiUrl: p.nginx.apiUrl }));
  sim.current = new ReplicationSim({ name: origin.name, apiUrl: origin.nginx.apiUrl }, replicas());
  const issue = (token: string, lags: Record<string, Lag> = {}) => sim.current!.issue(token, lags);
  /** The hop floor of this run: both policies through nginx for a token every replica already holds. */
  let hopMs = 0;

  await t.test('token on every replica → Synced, both policies serve', async (t) => {
    const token = newToken('everywhere');
    const issued = await issue(token);
    await issued.replicated;
    const { open, strict } = await expectPolicies(t, origin, token, 'Synced');
    hopMs = Math.max(open.ms, strict.ms);
    t.comment(`already replicated: fail-open ${open.ms.toFixed(1)} ms, wait-strict ${strict.ms.toFixed(1)} ms`);
  });

  await t.test(`a token of ${MAX_TOKEN_BYTES} bytes (the sidecar's limit) passes every hop: API, client, sidecar, probes`, async (t) => {
    const label = newToken('longest');
    // The label is in `tokens` (newToken): the log check below finds the token by it.
    const token = label + 'x'.repeat(MAX_TOKEN_BYTES - label.length);
    t.equal(token.length, MAX_TOKEN_BYTES);
    const issued = await issue(token);
    t.same(
      (await issued.replicated).filter((w) => w.atMs === undefined),
      [],
      'written to every replica through its token API',
    );
    await expectPolicies(t, origin, token, 'Synced');
    const direct = await askSidecar(origin, token);
    t.same(
      direct.json.peers.map((p) => p.lastStatus),
      others.map(() => 200),
      'every peer probe server answered 200 for it',
    );
  });

  for (const path of [FAIL_OPEN_PATH, WAIT_STRICT_PATH]) {
    await t.test(`replication lag below the deadline → Synced after about the lag (${path})`, async (t) => {
      const lags = { [podName(1)]: 200, [podName(2)]: 450, [podName(3)]: 700 };
      const maxLag = 700;
      const token = newToken('lag');
      const issued = await issue(token, lags);
      const { result: res, lateMs } = await withLoopDelay(() => client(origin, path, token));
      const sinceIssue = performance.now() - issued.originAt;
      const writes = await issued.replicated;
      const lastWrite = Math.max(...writes.map((w) => w.atMs ?? 0));
      // Bounded by when the last write actually landed in this run, not by the nominal lag.
      const bound = boundOf(Math.max(maxLag, lastWrite), MARGIN_MS, { lateMs, hopMs });
      t.equal(res.status, 200);
      t.equal(res.headers['x-token-status'], 'Synced');
      t.comment(
        `${path}: lags ${Object.values(lags).join('/')} ms (last write landed at ${lastWrite.toFixed(0)} ms) → ` +
          `Synced after ${res.ms.toFixed(0)} ms (${sinceIssue.toFixed(0)} ms after the origin write)`,
      );
      t.ok(sinceIssue >= lastWrite, 'the answer did not come before the last replica had the token');
      t.ok(res.ms <= bound.ms, `answered ${res.ms.toFixed(0)} ms after the request (bound ${bound.why})`);
    });
  }

  await t.test('one replica never gets the token → Partialy (2 of 3 peers synced)', async (t) => {
    const token = newToken('one-missing');
    await (await issue(token, { [podName(3)]: 'never' })).replicated;
    const { result: { open }, lateMs } = await withLoopDelay(() => expectPolicies(t, origin, token, 'Partialy'));
    const bound = boundOf(HARD_TIMEOUT_MS, MARGIN_MS, { lateMs, hopMs });
    t.ok(open.ms <= bound.ms, `answered in ${open.ms.toFixed(0)} ms (bound ${bound.why})`);
    t.comment(`one replica never synced: Partialy after ${open.ms.toFixed(0)} ms (retries exhausted, deadline ${HARD_TIMEOUT_MS} ms)`);
    const direct = await askSidecar(origin, token);
    t.same(
      direct.json.peers.map((p) => [p.name, p.outcome]).sort(),
      [
        [podName(1), 'synced'],
        [podName(2), 'synced'],
        [podName(3), 'missing'],
      ],
    );
    t.equal(direct.json.peers.find((p) => p.name === podName(3))?.lastStatus, 401);
  });

  await t.test('two of three replicas never get it → NotSynced', async (t) => {
    const token = newToken('two-missing');
    await (await issue(token, { [podName(2)]: 'never', [podName(3)]: 'never' })).replicated;
    await expectPolicies(t, origin, token, 'NotSynced');
  });

  await t.test("a replica's nginx stopped → its outcome is error, answer within the deadline", async (t) => {
    const down = pods[3]!;
    await down.nginx.stop();
    const token = newToken('peer-down');
    await (await issue(token, { [down.name]: 'never' })).replicated;
    const { result: direct, lateMs } = await withLoopDelay(() => askSidecar(origin, token));
    t.equal(direct.status, 200);
    const peer = direct.json.peers.find((p) => p.name === down.name);
    t.equal(peer?.outcome, 'error', `stopped replica: ${JSON.stringify(peer)}`);
    t.equal(direct.tokenStatus, direct.json.verdict, 'header and body agree');
    t.equal(direct.json.verdict, 'Partialy', '2 of 3 synced');
    const bound = boundOf(HARD_TIMEOUT_MS, MARGIN_MS, { lateMs, hopMs });
    t.ok(direct.ms <= bound.ms, `sidecar answered in ${direct.ms.toFixed(0)} ms (bound ${bound.why})`);
    const { result: open, lateMs: openLateMs } = await withLoopDelay(() => client(origin, FAIL_OPEN_PATH, token));
    const openBound = boundOf(HARD_TIMEOUT_MS, MARGIN_MS, { lateMs: openLateMs, hopMs });
    t.equal(open.status, 200);
    t.equal(open.headers['x-token-status'], 'Partialy');
    t.ok(open.ms <= openBound.ms, `through nginx in ${open.ms.toFixed(0)} ms (bound ${openBound.why})`);
    t.comment(`stopped replica: sidecar ${direct.ms.toFixed(0)} ms, via nginx ${open.ms.toFixed(0)} ms (deadline ${HARD_TIMEOUT_MS} ms)`);

    // Back up (empty store, as a restarted pod would be): synced again once it has the token.
    down.nginx = await startNginx(3, down.sidecarAddr, down.nginx.apiPort);
    await writeToken(down.nginx.apiUrl, token);
    const again = await client(origin, FAIL_OPEN_PATH, token);
    t.equal(again.headers['x-token-status'], 'Synced', 'restarted replica counts again');
  });

  await t.test("a replica's nginx frozen (SIGSTOP) → Timeout at the deadline: fail-open serves, wait-strict rejects", async (t) => {
    const frozen = pods[2]!;
    const token = newToken('frozen');
    await (await issue(token)).replicated;
    // Its kernel still accepts connections, nothing answers: every probe times out and is
    // retried until the hard deadline, so the peer is unresolved → Timeout.
    killGroup(frozen.nginx.process.pid, 'SIGSTOP');
    const {
      result: { open, strict },
      lateMs,
    } = await withLoopDelay(() => expectPolicies(t, origin, token, 'Timeout')).finally(() => killGroup(frozen.nginx.process.pid, 'SIGCONT'));
    const bound = boundOf(HARD_TIMEOUT_MS, MARGIN_MS, { lateMs, hopMs });
    for (const res of [open, strict]) t.ok(res.ms >= HARD_TIMEOUT_MS - 50 && res.ms <= bound.ms, `answered at the deadline (${res.ms.toFixed(0)} ms; bound ${bound.why})`);
    t.comment(`frozen replica: Timeout after ${open.ms.toFixed(0)} / ${strict.ms.toFixed(0)} ms (deadline ${HARD_TIMEOUT_MS} ms)`);
  });

  await t.test('origin sidecar stopped → fail-open serves, wait-strict rejects', async (t) => {
    const token = newToken('sidecar-down');
    await (await issue(token)).replicated;
    const code = await origin.sidecar.stop('SIGTERM', 5_000);
    t.equal(code, 0, 'sidecar exits 0 on SIGTERM');
    const {
      result: { open, strict },
      lateMs,
    } = await withLoopDelay(() => expectPolicies(t, origin, token, 'Unavailable'));
    const bound = boundOf(0, MARGIN_MS, { lateMs, hopMs });
    t.ok(Math.max(open.ms, strict.ms) <= bound.ms, `a dead sidecar fails fast, connection refused (${Math.max(open.ms, strict.ms).toFixed(0)} ms; bound ${bound.why})`);
  });

  await t.test('tokens never appear in nginx or sidecar logs', async (t) => {
    const logs = (await Promise.all(pods.map((p) => p.nginx.logs()))).join('\n') + pods.map((p) => p.sidecar.output()).join('\n');
    t.ok(logs.includes('"msg":"listening"'), 'sidecar logs were captured');
    for (const [i, token] of tokens.entries()) t.notOk(logs.includes(token), `test token #${i + 1} not logged`);
  });
});

t.test('no nginx or sidecar left running', async (t) => {
  t.same(livePids(), [], 'every tracked process group has exited');
});
