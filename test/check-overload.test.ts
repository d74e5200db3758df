// The built sidecar under overload, a scrape flood and a SIGTERM with requests already sent:
// every check gets a true answer in time, the excess a 503 at once, connections stay within the
// cap, and every request that reached the socket is answered. The peers are nginx (separate
// processes, as in production). Deadlines are the sidecar's own: its durationMs against the
// deadline + 100 ms + how late its event loop ran meanwhile (its nodejs_eventloop_lag_max_seconds
// over the burst), so a machine whose CPU is taken moves the bound with it; the client's view of
// the same moments (this process, as loaded) is reported, not held to a bound.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { Pool } from 'undici';
import { nginxMissing, startNginxPeers, writeToken, writeTokens } from './support/nginx.js';
import { startReplicas } from './support/replica-server.js';
import { sampleConnections } from './support/tcp-sockets.js';
import { peersEnv } from './support/sidecar-app.js';
import { startSidecarProcess, type SidecarProcess } from './support/sidecar-process.js';
import { boundOf, sidecarLoopDelayMs } from './support/timing-floor.js';
import { waitFor } from './support/wait.js';
import { requirePart } from './support/required.js';

const DEADLINE_MS = 1500; // the default SYNCER_HARD_TIMEOUT_MS
const ALLOWANCE_MS = 100; // what issue 9 allows past it
const CAP = 8; // the default SYNCER_PROBE_CONNECTIONS
/** A check sent as the burst ends is answered within this long of reaching the sidecar, besides its loop delay. */
const RECOVERY_MS = 1_000;

interface Burst {
  readonly statuses: Map<number, number>;
  /** The sidecar's own durationMs of each answered check. */
  readonly durations: number[];
  readonly retryAfter: Set<string>;
  readonly endedAt: number;
}

async function burst(s: SidecarProcess, tokens: readonly string[]): Promise<Burst> {
  const pool = new Pool(s.apiUrl, { connections: tokens.length });
  const statuses = new Map<number, number>();
  const durations: number[] = [];
  const retryAfter = new Set<string>();
  try {
    await Promise.all(
      tokens.map(async (token) => {
        const res = await pool.request({ method: 'GET', path: '/v1/synced', headers: { 'x-auth-token': token } });
        const body = JSON.parse(await res.body.text()) as { durationMs?: number };
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode === 200) durations.push(body.durationMs ?? NaN);
        if (res.statusCode === 503) retryAfter.add(String(res.headers['retry-after']));
      }),
    );
    return { statuses, durations, retryAfter, endedAt: performance.now() };
  } finally {
    await pool.close();
  }
}

t.test('a burst of 1,000 concurrent checks at 31 nginx peers, default settings', async (t) => {
  requirePart(nginxMissing());
  // Real nginx peers, as in production: a peer that answers in C leaves the machine's two cores
  // to the sidecar and the load generator, so what is measured is the sidecar's deadline.
  const peers = await startNginxPeers(32, '127.0.16.', 10);
  t.teardown(() => peers.stop());
  const { pods, probePort: port } = peers;
  const tokens = Array.from({ length: 1000 }, (_, i) => String(i));
  await Promise.all(pods.map((p) => writeTokens(p.apiUrl, tokens)));
  const s = await startSidecarProcess({ POD_NAME: 'pod-0', SYNCER_DISCOVERY: 'static', SYNCER_PEERS: peers.peersEnv, LOG_LEVEL: 'info' }, {});
  t.teardown(() => s.stop());

  // The hop floor of this run: one check of a token every peer holds, before the burst (not one
  // of the burst's tokens: its Synced memo would answer that one in the burst).
  const calmToken = 'calm-before-the-burst';
  // Held by every peer before the burst: checked the moment it ends.
  const held = 'held-after-the-burst';
  await Promise.all(pods.flatMap((p) => [writeToken(p.apiUrl, calmToken), writeToken(p.apiUrl, held)]));
  const calm = await s.check(calmToken);
  t.same([calm.status, calm.tokenStatus], [200, 'Synced']);

  // The sidecar's own sockets to the peers, sampled through the burst; its loop delay from now on.
  const sampler = sampleConnections(s.process.pid, port, 25);
  await sidecarLoopDelayMs(s.opsUrl);
  const b = await burst(s, tokens);
  const normal = await s.check(held);
  const back = performance.now() - b.endedAt;
  const lateMs = await sidecarLoopDelayMs(s.opsUrl);
  const conns = sampler.stop();
  const ok = b.statuses.get(200) ?? 0;
  const refused = b.statuses.get(503) ?? 0;
  t.equal(ok + refused, 1000, `every check answered: ${ok} verdicts, ${refused} refused (${JSON.stringify([...b.statuses])})`);
  t.ok(ok >= 128, 'at least SYNCER_MAX_IN_FLIGHT checks were admitted');
  if (refused > 0) t.same([...b.retryAfter], ['1'], 'refusals carry Retry-After: 1');
  const deadline = boundOf(DEADLINE_MS, ALLOWANCE_MS, { lateMs, hopMs: 0 });
  const late = b.durations.filter((d) => !(d <= deadline.ms));
  t.same(late, [], `no verdict after the deadline + ${ALLOWANCE_MS} ms + the sidecar's loop delay (max ${Math.max(...b.durations).toFixed(0)} ms; bound ${deadline.why})`);
  t.ok(conns.maxAtOnce <= CAP, `connections to a peer at once never above the cap (${conns.maxAtOnce} ≤ ${CAP}: ${conns.worst})`);
  const opened = Math.max(...conns.opened.values());
  t.ok(opened <= 4 * CAP, `connections opened to a peer in all: at most ${opened} (the old pools: ~27,000 at nginx)`);

  t.same([normal.status, normal.tokenStatus], [200, 'Synced'], 'a check sent as the burst ends is answered normally');
  const recovery = boundOf(RECOVERY_MS, 0, { lateMs, hopMs: 0 });
  const inSidecar = normal.body.durationMs ?? NaN;
  t.ok(inSidecar <= recovery.ms, `within 1 s of reaching the sidecar (${inSidecar} ms; bound ${recovery.why})`);
  t.comment(`that check's answer came ${back.toFixed(0)} ms after the burst's last answer reached this client (${calm.elapsedMs.toFixed(0)} ms for one check before the burst)`);
  const fresh = await s.check('after-the-burst');
  t.same([fresh.status, fresh.tokenStatus], [200, 'NotSynced'], 'and a token nobody holds gets its true verdict, not a Timeout');
  const metrics = await (await fetch(`${s.opsUrl}/metrics`)).text();
  if (refused > 0) t.match(metrics, new RegExp(`syncer_checks_rejected_total\\{reason="overloaded"\\} ${refused}\\b`), 'refusals are counted as overloaded');
});

t.test('2,000 rapid /metrics requests do not turn NotSynced into Timeout', async (t) => {
  requirePart(nginxMissing());
  // nginx peers: peers in this process would answer as late as the flood this process sends
  // makes them, and their timeouts would be this process's, not the sidecar's.
  const peers = await startNginxPeers(4, '127.0.17.', 10);
  t.teardown(() => peers.stop());
  const s = await startSidecarProcess({ POD_NAME: 'pod-0', SYNCER_DISCOVERY: 'static', SYNCER_PEERS: peers.peersEnv, LOG_LEVEL: 'info' }, {});
  t.teardown(() => s.stop());
  const ops = new Pool(s.opsUrl, { connections: 50 });
  t.teardown(() => ops.close());
  let scrapes = 0;
  const flood = Promise.all(
    Array.from({ length: 50 }, async () => {
      while (scrapes < 2000) {
        scrapes++;
        const res = await ops.request({ method: 'GET', path: '/metrics' });
        await res.body.text();
      }
    }),
  );
  // Nobody holds these tokens: every check retries to the end of its window and is NotSynced.
  const checks = await Promise.all(Array.from({ length: 40 }, (_, i) => s.check(`missing-${i}`)));
  await flood;
  const verdicts = new Map<string, number>();
  for (const c of checks) verdicts.set(c.tokenStatus ?? '?', (verdicts.get(c.tokenStatus ?? '?') ?? 0) + 1);
  t.same([...verdicts], [['NotSynced', 40]], `verdicts while scraped ${scrapes} times`);
});

t.test('SIGTERM: every request already sent gets an HTTP answer, none is reset', async (t) => {
  const replicas = await startReplicas(3, { net: '127.0.18.', first: 10, port: 18132 });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const s = await startSidecarProcess({ POD_NAME: 'pod-0', SYNCER_DISCOVERY: 'static', SYNCER_PEERS: peersEnv(replicas), LOG_LEVEL: 'info' }, {});
  for (const r of replicas) r.give('held');
  const { port, hostname } = new URL(s.apiUrl);
  // 200 connections, as nginx's upstream keepalive holds them; then a request on each, and
  // SIGTERM in the same tick: most requests are still unread in the sidecar's sockets.
  const sockets: Socket[] = await Promise.all(
    Array.from({ length: 200 }, () => new Promise<Socket>((resolve, reject) => {
      const sock = connect(Number(port), hostname, () => resolve(sock));
      sock.once('error', reject);
    })),
  );
  const answers = sockets.map(
    (sock) =>
      new Promise<string>((resolve) => {
        let data = '';
        sock.on('data', (c: Buffer) => (data += c.toString('latin1')));
        sock.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
        sock.on('close', () => resolve(data === '' ? 'closed without an answer' : data.split('\r\n')[0]!));
      }),
  );
  for (const sock of sockets) sock.write('GET /v1/synced HTTP/1.1\r\nHost: sidecar\r\nX-Auth-Token: held\r\n\r\n');
  s.child.kill('SIGTERM');
  const lines = await Promise.all(answers);
  const tally = new Map<string, number>();
  for (const l of lines) tally.set(l, (tally.get(l) ?? 0) + 1);
  t.ok(
    lines.every((l) => l === 'HTTP/1.1 200 OK' || l === 'HTTP/1.1 503 Service Unavailable'),
    `every request answered 200 or 503: ${JSON.stringify([...tally])}`,
  );
  t.equal(await s.exited, 0, 'and the sidecar exits 0');
  await waitFor(() => s.child.exitCode !== null, 'the process to be gone');
});
