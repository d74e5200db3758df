// Fuzzing the built sidecar's check API: thousands of malformed requests
// (support/malformed-requests.ts), each on a connection of its own, interleaved with good checks
// on kept-alive connections. Every malformed one gets a 4xx or a closed connection — never a 5xx,
// never a verdict — the good ones keep their true verdicts, and the process neither crashes nor
// logs an error. The run is seeded: the seed is printed, and FUZZ_SEED=<seed> replays it.
import { connect } from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import { Pool } from 'undici';
import { malformedRequest, type MalformedRequest } from './support/malformed-requests.js';
import { startReplicas } from './support/replica-server.js';
import { peersEnv } from './support/sidecar-app.js';
import { startSidecarProcess, type SidecarProcess } from './support/sidecar-process.js';

const MALFORMED = Number(process.env['FUZZ_REQUESTS'] ?? 3000);
/** One good check after every this many malformed requests. */
const GOOD_EVERY = 8;
const CONCURRENCY = 32;
/** A malformed request still unanswered this long after it was sent has hung the connection: a finding. */
const HANG_MS = 10_000;
const HELD = 'fuzz-held-everywhere';
const PARTIAL = 'fuzz-held-by-two-of-three';

/** What came back on the connection: the first status line's code, or how it ended without one. */
type Outcome = { readonly status: number } | { readonly closed: 'without an answer' | 'hung' };

function send(s: SidecarProcess, req: MalformedRequest): Promise<Outcome> {
  const { port, hostname } = new URL(s.apiUrl);
  return new Promise((resolve) => {
    const sock = connect(Number(port), hostname);
    let data = '';
    const done = (outcome: Outcome): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => done({ closed: 'hung' }), HANG_MS);
    sock.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3}) /.exec(data);
      if (status !== null) done({ status: Number(status[1]) });
    });
    sock.on('error', () => undefined);
    sock.on('close', () => done({ closed: 'without an answer' }));
    if (req.end) sock.end(req.bytes);
    else sock.write(req.bytes);
  });
}

t.test(`${MALFORMED} malformed requests interleaved with good checks`, async (t) => {
  const seed = Number(process.env['FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  t.comment(`seed ${seed}: FUZZ_SEED=${seed} replays this run`);
  const replicas = await startReplicas(3, { net: '127.0.42.', first: 10, port: 18142 });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  for (const r of replicas) r.give(HELD);
  replicas[0]!.give(PARTIAL);
  replicas[1]!.give(PARTIAL);
  const s = await startSidecarProcess({ POD_NAME: 'pod-x', SYNCER_DISCOVERY: 'static', SYNCER_PEERS: peersEnv(replicas), SYNCER_SYNCED_TTL_MS: '0', LOG_LEVEL: 'info' });
  t.teardown(() => s.stop());
  const good = new Pool(s.apiUrl, { connections: 8 });
  t.teardown(() => good.close());

  const requests = fc.sample(malformedRequest(HELD), { seed, numRuns: MALFORMED });
  const wrong: string[] = [];
  const tally = new Map<string, number>();
  const goodVerdicts = new Map<string, number>();
  const goodWanted = new Map<string, number>();
  let goodSent = 0;
  let next = 0;
  // Good checks run beside the malformed requests, not between them: a Partialy takes its ~1 s retry window.
  const goodChecks: Array<Promise<void>> = [];
  const checkGood = async (token: string, want: string): Promise<void> => {
    goodSent++;
    goodWanted.set(`200 ${want}`, (goodWanted.get(`200 ${want}`) ?? 0) + 1);
    const res = await good.request({ method: 'GET', path: '/v1/synced', headers: { 'x-auth-token': token } });
    const body = await res.body.text();
    const verdict = `${res.statusCode} ${String(res.headers['x-token-status'])}`;
    goodVerdicts.set(verdict, (goodVerdicts.get(verdict) ?? 0) + 1);
    if (verdict !== `200 ${want}`) wrong.push(`good check of ${token}: ${verdict} ${body.slice(0, 200)}`);
  };
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < requests.length; i = next++) {
        const req = requests[i]!;
        const outcome = await send(s, req);
        const label = 'status' in outcome ? String(outcome.status) : outcome.closed;
        tally.set(`${req.kind} → ${label}`, (tally.get(`${req.kind} → ${label}`) ?? 0) + 1);
        if (!('status' in outcome ? outcome.status >= 400 && outcome.status < 500 : outcome.closed === 'without an answer')) {
          wrong.push(`#${i} ${req.kind} → ${label}: ${JSON.stringify(req.bytes.toString('latin1').slice(0, 160))}`);
        }
        if (i % GOOD_EVERY === 0) goodChecks.push(i % (2 * GOOD_EVERY) === 0 ? checkGood(HELD, 'Synced') : checkGood(PARTIAL, 'Partialy'));
      }
    }),
  );
  await Promise.all(goodChecks);

  t.comment([...tally].sort().map(([k, n]) => `${n}\t${k}`).join('\n'));
  t.same(wrong.slice(0, 20), [], `every malformed request: a 4xx or a closed connection; every good check: its verdict (${wrong.length} not; seed ${seed})`);
  t.same([...goodVerdicts].sort(), [...goodWanted].sort(), `${goodSent} good checks, all with their true verdict`);

  t.equal(s.process.exitStatus(), undefined, 'the sidecar is still running');
  const health = await fetch(`${s.opsUrl}/healthz`);
  t.equal(health.status, 200, 'and healthy');
  const metrics = await (await fetch(`${s.opsUrl}/metrics`)).text();
  const verdicts = [...metrics.matchAll(/^syncer_checks_total\{verdict="\w+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  t.equal(verdicts, goodSent, 'only the good checks were answered with a verdict: no malformed request was judged');
  t.notMatch(metrics, /syncer_checks_rejected_total\{reason="internal_error"\} [1-9]/, 'no request met a bug');
  const errors = s.lines.filter((l) => typeof l['level'] === 'number' && l['level'] >= 50);
  t.same(errors, [], 'no error in the log');
});
