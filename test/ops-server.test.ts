// The ops listener in-process, with an injected clock and metrics renderer: what the kubelet and
// Prometheus see from /healthz, /readyz and /metrics (cached for METRICS_TTL_MS, a failed render
// not served again), the canary's last run in /readyz's body, and the answers to other methods
// and paths.
import type { Server } from 'node:http';
import t from 'tap';
import { canaryStatus, createOpsServer, METRICS_TTL_MS, type OpsDeps } from '../sidecar/http/ops-server.js';
import type { CanaryReport, PeerSet } from '../sidecar/model.js';
import { closeServer, listenOnLoopback } from './support/listen.js';
import { http } from './support/net.js';
import { waitFor } from './support/wait.js';

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A render the test settles when it chooses. */
interface PendingRender {
  resolve(text: string): void;
  reject(err: Error): void;
}

interface Ops {
  readonly url: string;
  readonly server: Server;
  /** The injected clock (ms). */
  now: number;
  draining: boolean;
  set: PeerSet | undefined;
  /** Calls of renderMetrics so far. */
  renders: number;
  /** What the next renders do: answer `metrics <n>` (n = render number) unless told otherwise. */
  next: 'answer' | 'fail' | 'hold';
  readonly held: PendingRender[];
}

async function startOps(t: { teardown(fn: () => Promise<void>): void }, overrides: Partial<OpsDeps> = {}): Promise<Ops> {
  const state = { now: 1_000, draining: false, set: undefined as PeerSet | undefined, renders: 0, next: 'answer' as Ops['next'], held: [] as PendingRender[] };
  const server = createOpsServer({
    current: () => state.set,
    discoveryState: () => 'synced',
    renderMetrics: () => {
      const n = ++state.renders;
      if (state.next === 'fail') return Promise.reject(new Error(`render ${n} failed`));
      if (state.next === 'hold') return new Promise<string>((resolve, reject) => state.held.push({ resolve, reject }));
      return Promise.resolve(`metrics ${n}\n`);
    },
    metricsContentType: CONTENT_TYPE,
    isDraining: () => state.draining,
    now: () => state.now,
    ...overrides,
  });
  const ops: Ops = Object.assign(state, { server, url: await listenOnLoopback(server) });
  t.teardown(() => closeServer(server));
  return ops;
}

t.test('/metrics: one render serves every scrape for METRICS_TTL_MS; the first scrape at the TTL renders again', async (t) => {
  const ops = await startOps(t);
  const first = await http(`${ops.url}/metrics`);
  t.equal(first.status, 200);
  t.equal(first.headers['content-type'], CONTENT_TYPE);
  t.equal(first.body, 'metrics 1\n');
  t.equal((await http(`${ops.url}/metrics`)).body, 'metrics 1\n', 'at the same instant: the cached text');
  ops.now += METRICS_TTL_MS - 1;
  t.equal((await http(`${ops.url}/metrics`)).body, 'metrics 1\n', 'just under the TTL: still cached');
  ops.now += 1;
  t.equal((await http(`${ops.url}/metrics`)).body, 'metrics 2\n', 'at the TTL: rendered again');
  t.equal(ops.renders, 2);
});

t.test('/metrics: scrapes that arrive while a render runs share it', async (t) => {
  const ops = await startOps(t);
  ops.next = 'hold';
  let requests = 0;
  ops.server.on('request', () => requests++);
  const scrapes = [http(`${ops.url}/metrics`), http(`${ops.url}/metrics`)];
  await waitFor(() => requests === 2, 'both scrapes to arrive');
  t.equal(ops.renders, 1, 'one render for both');
  ops.held[0]!.resolve('shared\n');
  t.same((await Promise.all(scrapes)).map((r) => [r.status, r.body]), [[200, 'shared\n'], [200, 'shared\n']]);
});

t.test('/metrics: a failed render answers 500 and is not served again, even within the TTL', async (t) => {
  const ops = await startOps(t);
  ops.next = 'fail';
  const failed = await http(`${ops.url}/metrics`);
  t.equal(failed.status, 500);
  t.same(JSON.parse(failed.body), { error: 'metrics collection failed' });
  ops.next = 'answer';
  const again = await http(`${ops.url}/metrics`);
  t.equal(again.status, 200, 'the next scrape, at the same instant, renders again');
  t.equal(again.body, 'metrics 2\n');
});

t.test('/metrics: an old render failing late does not drop the newer one that replaced it', async (t) => {
  const ops = await startOps(t);
  ops.next = 'hold';
  const slow = http(`${ops.url}/metrics`);
  await waitFor(() => ops.renders === 1, 'the first render to start');
  ops.now += METRICS_TTL_MS;
  ops.next = 'answer';
  t.equal((await http(`${ops.url}/metrics`)).body, 'metrics 2\n', 'past the TTL a new render starts');
  ops.held[0]!.reject(new Error('late failure'));
  t.equal((await slow).status, 500, 'the scrape that waited on the failed render');
  ops.now += 1;
  t.equal((await http(`${ops.url}/metrics`)).body, 'metrics 2\n', 'the newer render is still served');
  t.equal(ops.renders, 2);
});

t.test('/metrics: an answer that cannot be written ends the connection instead of leaving the scraper waiting', async (t) => {
  // Node refuses a header value with a line break: writing the answer throws.
  const ops = await startOps(t, { metricsContentType: 'text/plain\nX-Injected: 1' });
  const err = await http(`${ops.url}/metrics`, { timeoutMs: 5_000 }).then(
    () => undefined,
    (e: unknown) => e as NodeJS.ErrnoException,
  );
  t.equal(err?.code, 'ECONNRESET', `connection reset, not an answer or a wait (${err?.message})`);
});

t.test('HEAD is answered like GET without a body; other methods get 405 with Allow; other paths 404', async (t) => {
  const ops = await startOps(t);
  const head = await http(`${ops.url}/metrics`, { method: 'HEAD' });
  t.same([head.status, head.headers['content-type'], head.body], [200, CONTENT_TYPE, '']);
  const healthHead = await http(`${ops.url}/healthz`, { method: 'HEAD' });
  t.same([healthHead.status, healthHead.body], [200, '']);
  const health = await http(`${ops.url}/healthz`);
  t.same([health.status, JSON.parse(health.body)], [200, { status: 'ok' }]);
  const post = await http(`${ops.url}/healthz`, { method: 'POST' });
  t.same([post.status, post.headers.allow, JSON.parse(post.body)], [405, 'GET, HEAD', { error: 'method not allowed' }]);
  const missing = await http(`${ops.url}/nowhere?x=1`);
  t.same([missing.status, JSON.parse(missing.body)], [404, { error: 'not found' }]);
});

t.test('/readyz: 503 before the first peer set, 200 with it, 503 while shutting down', async (t) => {
  const ops = await startOps(t);
  const waiting = await http(`${ops.url}/readyz`);
  t.same([waiting.status, JSON.parse(waiting.body)], [503, { status: 'waiting for discovery' }]);
  ops.set = { version: 3, peers: [{ name: 'a', host: '127.0.0.2', port: 80 }] };
  const ready = await http(`${ops.url}/readyz`);
  t.same([ready.status, JSON.parse(ready.body)], [200, { status: 'ready', discovery: 'synced', peers: 1, version: 3 }]);
  ops.draining = true;
  const draining = await http(`${ops.url}/readyz`);
  t.same([draining.status, JSON.parse(draining.body)], [503, { status: 'shutting down' }]);
});

t.test("/readyz: the canary's last run in the body, as a person reads it; readiness unchanged by it", async (t) => {
  const report: CanaryReport = {
    result: 'incomplete',
    startedAt: Date.UTC(2026, 11, 7, 12, 0, 0),
    endedAt: Date.UTC(2026, 11, 7, 12, 0, 1, 500),
    cause: null,
    peers: [
      { name: 'apigw-1', result: 'arrived', delayMs: 3.14159 },
      { name: 'apigw-2', result: 'missing', delayMs: null },
      { name: 'apigw-3', result: 'arrived', delayMs: 41.256 },
      { name: 'apigw-4', result: 'timeout', delayMs: null },
    ],
  };
  t.same(canaryStatus(report), {
    result: 'incomplete',
    startedAt: '2026-12-07T12:00:00.000Z',
    endedAt: '2026-12-07T12:00:01.500Z',
    cause: null,
    peers: 4,
    arrived: 2,
    slowestMs: 41.26,
    notArrived: [{ name: 'apigw-2', result: 'missing' }, { name: 'apigw-4', result: 'timeout' }],
  });
  t.match(canaryStatus({ result: 'write_failed', startedAt: 0, endedAt: 1, cause: 'ECONNREFUSED', peers: [] }), { cause: 'ECONNREFUSED', peers: 0, arrived: 0, slowestMs: null, notArrived: [] });

  let last: CanaryReport | undefined;
  const ops = await startOps(t, { canary: () => last });
  ops.set = { version: 1, peers: [] };
  t.notOk('canary' in JSON.parse((await http(`${ops.url}/readyz`)).body), 'no canary field before its first run');
  last = { ...report, result: 'write_failed', cause: 'HTTP 503', peers: [] };
  const res = await http(`${ops.url}/readyz`);
  t.equal(res.status, 200, 'a failing canary does not make the pod unready');
  t.match(JSON.parse(res.body), { status: 'ready', canary: { result: 'write_failed', cause: 'HTTP 503' } });
});
