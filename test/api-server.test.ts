// The check API's own paths, in-process: refusals word for word, and what a bug in this
// process does to one request — a 500 while nothing was sent yet, the connection dropped when an
// answer broke off half-written, and nothing at all to an answer already complete.
// The peer set is this pod alone, so every check is a fan-out to nobody: Synced, with no network.
import { once } from 'node:events';
import { createServer as createTcpServer, type Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { Client } from 'undici';
import { createApiServer } from '../sidecar/http/api-server.js';
import { tokenFingerprint } from '../sidecar/check/token-keys.js';
import type { CheckAnswered, Peer, RejectReason } from '../sidecar/model.js';
import { checkerFixture } from './support/checker-fixture.js';
import { captureLogger, type LogLine } from './support/discovery-harness.js';

/** What the test flips per request. */
interface Faults {
  draining: boolean;
  hasPeersThrows: boolean;
  answeredThrows: boolean;
}

interface Api {
  readonly client: Client;
  readonly faults: Faults;
  /** Each rejection, with whether its response was destroyed at that moment. */
  readonly rejections: Array<{ reason: RejectReason; destroyed: boolean }>;
  readonly answered: number[];
  /** Every answered check's event, as the observer saw it. */
  readonly events: CheckAnswered[];
  readonly lines: LogLine[];
  /** Publishes the peer set (this pod is always in it). */
  setPeers(peers: readonly Peer[]): void;
  /** Connections the server accepted. */
  connections(): number;
  newClient(): Client;
}

const planted = (what: string) => (): never => {
  throw new Error(`planted: ${what}`);
};

async function startApi(t: { teardown(fn: () => Promise<void>): void }, env: Record<string, string> = {}, now: () => number = () => performance.now()): Promise<Api> {
  const fixture = checkerFixture({ POD_NAME: 'self', ...env });
  fixture.setPeers([{ name: 'self', host: '127.0.0.1', port: 9 }]);
  const faults: Faults = { draining: false, hasPeersThrows: false, answeredThrows: false };
  const rejections: Api['rejections'] = [];
  const answered: number[] = [];
  const events: CheckAnswered[] = [];
  const { log, lines } = captureLogger('error');
  let lastResponse: ServerResponse | undefined;
  const server = createApiServer({
    checker: fixture.checker,
    hasPeers: () => (faults.hasPeersThrows ? planted('hasPeers')() : true),
    observer: {
      // As the check log at info: a line (and so a fingerprint) for checks that probed only.
      wantsFingerprint: (cached) => !cached,
      answered: (e) => {
        answered.push(e.status);
        events.push(e);
        if (faults.answeredThrows) planted('answered')();
      },
      rejected: (reason) => rejections.push({ reason, destroyed: lastResponse?.destroyed ?? false }),
    },
    log,
    defaultOrigin: 'self',
    now,
    isDraining: () => faults.draining,
  });
  let connections = 0;
  server.on('connection', () => connections++);
  // Failures of Node's own response methods, planted before the handler runs: the only way to
  // reach the branches that guard against them.
  server.prependListener('request', (req, res) => {
    lastResponse = res;
    if (req.headers['x-test-fault'] === 'write-head') res.writeHead = planted('writeHead');
    if (req.headers['x-test-fault'] === 'end') res.end = planted('end');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clients: Client[] = [];
  const newClient = (): Client => {
    const c = new Client(url, { pipelining: 1 });
    clients.push(c);
    return c;
  };
  const client = newClient();
  t.teardown(async () => {
    await Promise.all(clients.map((c) => c.destroy()));
    server.closeAllConnections();
    server.close();
    await fixture.close();
  });
  const self: Peer = { name: 'self', host: '127.0.0.1', port: 9 };
  return { client, faults, rejections, answered, events, lines, connections: () => connections, newClient, setPeers: (peers) => fixture.setPeers([self, ...peers]) };
}

async function get(client: Client, path = '/v1/synced', headers: Record<string, string> = { 'X-Auth-Token': 'tok' }) {
  const res = await client.request({ path, method: 'GET', headers });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: body === '' ? undefined : (JSON.parse(body) as unknown) };
}

t.test('a check against a peer set of one (this pod) is Synced at once', async (t) => {
  const api = await startApi(t);
  const r = await get(api.client);
  t.match(r, { status: 200, headers: { 'x-token-status': 'Synced' }, body: { verdict: 'Synced', peers: [] } });
  t.same(api.rejections, []);
});

t.test('an unknown path: 404 "not found"', async (t) => {
  const api = await startApi(t);
  t.match(await get(api.client, '/v1/other'), { status: 404, body: { error: 'not found' } });
});

t.test('another method: 405 "method not allowed", Allow: GET, HEAD', async (t) => {
  const api = await startApi(t);
  const res = await api.client.request({ path: '/v1/synced', method: 'POST', headers: { 'X-Auth-Token': 'tok' } });
  t.same([res.statusCode, res.headers['allow'], JSON.parse(await res.body.text())], [405, 'GET, HEAD', { error: 'method not allowed' }]);
});

t.test('while draining: 503 "shutting down", Connection: close, counted as shutting_down', async (t) => {
  const api = await startApi(t);
  api.faults.draining = true;
  const r = await get(api.client);
  t.match(r, { status: 503, headers: { connection: 'close' }, body: { error: 'shutting down' } });
  t.same(api.rejections.map((x) => x.reason), ['shutting_down']);
});

t.test('an exception before anything is sent: 500 "internal error", one error line, counted', async (t) => {
  const api = await startApi(t);
  api.faults.hasPeersThrows = true;
  const r = await get(api.client);
  t.same([r.status, r.body], [500, { error: 'internal error' }]);
  t.same(api.rejections, [{ reason: 'internal_error', destroyed: false }]);
  t.match(api.lines, [{ level: 50, msg: /^internal error in a check/, answered: false, err: { message: 'planted: hasPeers' } }]);
  api.faults.hasPeersThrows = false;
  t.equal((await get(api.client)).status, 200, 'the next check is answered as usual');
});

for (const [name, env] of [
  ['a fan-out', { SYNCER_SYNCED_TTL_MS: '0' }],
  ['a memo hit', {}],
] as const) {
  t.test(`an exception after the answer (${name}): the answer stands, the connection stays open`, async (t) => {
    const api = await startApi(t, env);
    if (name === 'a memo hit') t.equal((await get(api.client)).status, 200, 'remembered Synced');
    api.faults.answeredThrows = true;
    const r = await get(api.client);
    t.match(r, { status: 200, headers: { 'x-token-status': 'Synced' }, body: { verdict: 'Synced', cached: name === 'a memo hit' } });
    t.same(api.rejections, [{ reason: 'internal_error', destroyed: false }], 'counted as an internal error');
    t.match(api.lines, [{ level: 50, answered: true, err: { message: 'planted: answered' } }]);
    api.faults.answeredThrows = false;
    t.equal((await get(api.client)).status, 200);
    t.equal(api.connections(), 1, 'every request went over the one keep-alive connection');
  });
}

/** The error a request ended with, or undefined when it was answered. */
const failureOf = (request: Promise<unknown>): Promise<unknown> =>
  request.then(
    () => undefined,
    (err: unknown) => err,
  );

t.test('when the 500 itself cannot be written, the connection is dropped', async (t) => {
  const api = await startApi(t);
  const failed = await failureOf(get(api.newClient(), '/v1/synced', { 'X-Auth-Token': 'tok', 'X-Test-Fault': 'write-head' }));
  t.ok(failed instanceof Error, 'the client sees the connection end without an answer');
  t.same(api.rejections, [{ reason: 'internal_error', destroyed: true }]);
  t.match(api.lines, [{ level: 50, answered: false, err: { message: 'planted: writeHead' } }]);
});

t.test('an answer that breaks off after its headers: the connection is dropped', async (t) => {
  const api = await startApi(t);
  const failed = await failureOf(get(api.newClient(), '/v1/other', { 'X-Test-Fault': 'end' }));
  t.ok(failed instanceof Error, 'the client sees the connection end mid-answer');
  t.same(api.rejections, [{ reason: 'internal_error', destroyed: true }]);
  t.match(api.lines, [{ level: 50, answered: true, err: { message: 'planted: end' } }]);
});

t.test('an answer: no-store, durationMs from the clock to 0.01 ms, the fingerprint only when the observer wants it', async (t) => {
  // Each reading of the listener's clock is 1.23456 ms after the last: a check spans one step.
  let clock = 0;
  const api = await startApi(t, {}, () => (clock += 1.23456));
  const first = await get(api.client);
  t.equal(first.headers['cache-control'], 'no-store', 'a verdict is never cached by anyone in between');
  t.match(first.body, { durationMs: 1.23, cached: false });
  const again = await get(api.client);
  t.match(again.body, { cached: true }, 'the second check is a memo hit');
  t.same(
    api.events.map((e) => [e.cached, e.durationMs, e.fingerprint]),
    [
      [false, 1.23, tokenFingerprint('tok')],
      [true, 1.23, undefined],
    ],
    'a probed check carries the fingerprint its log line needs; a memo hit, logged at debug, is not hashed',
  );
});

t.test("a token past Node's 16 KiB header limit still gets this listener's 400, not Node's bare 431", async (t) => {
  const api = await startApi(t);
  const r = await get(api.client, '/v1/synced', { 'X-Auth-Token': 'a'.repeat(20 * 1024) });
  t.same([r.status, r.body], [400, { error: 'X-Auth-Token is longer than 8192 bytes' }]);
  t.same(api.rejections.map((x) => x.reason), ['bad_token']);
});

t.test('past SYNCER_MAX_IN_FLIGHT: 503 "overloaded: too many checks in flight", Retry-After: 1, counted', async (t) => {
  // A peer that accepts and never answers keeps the first check in flight until its deadline.
  const held = new Set<Socket>();
  const hang = createTcpServer((socket) => void held.add(socket));
  hang.listen(0, '127.0.0.1');
  await once(hang, 'listening');
  t.teardown(() => {
    for (const socket of held) socket.destroy();
    hang.close();
  });
  const api = await startApi(t, { SYNCER_MAX_IN_FLIGHT: '1', SYNCER_HARD_TIMEOUT_MS: '400' });
  api.setPeers([{ name: 'hang', host: '127.0.0.1', port: (hang.address() as AddressInfo).port }]);
  const first = get(api.newClient(), '/v1/synced', { 'X-Auth-Token': 'first' });
  const second = await get(api.client, '/v1/synced', { 'X-Auth-Token': 'second' });
  t.match(second, { status: 503, headers: { 'retry-after': '1' }, body: { error: 'overloaded: too many checks in flight' } });
  t.same(api.rejections.map((x) => x.reason), ['overloaded']);
  t.match(await first, { status: 200, headers: { 'x-token-status': 'Timeout' } }, 'the admitted check keeps its deadline');
});
