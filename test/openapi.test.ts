// The API as a contract: sidecar/http/openapi.json is linted by Redocly's CLI, served at
// GET /openapi.json on the ops listener (and only there), and enforced: the running sidecar is
// driven through every answer it gives — each verdict, cached and shared answers, every
// refusal and error, HEAD — and each real answer is validated against the document; every
// answer the document describes must have been seen. The README's metrics table is held equal
// to the live /metrics output of a sidecar with everything on (canary, a memory limit).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Pool } from 'undici';
import { Telemetry } from '../sidecar/telemetry/metrics.js';
import { ApiContract, OPENAPI_PATH, type Listener, type SeenAnswer } from './support/api-contract.js';
import { KeyvalsRelay } from './support/keyvals-relay.js';
import { runTracked } from './support/processes.js';
import { startReplicas, type ReplicaServer } from './support/replica-server.js';
import { repoRoot } from './support/repo-root.js';
import { peersEnv, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { waitFor } from './support/wait.js';

const contract = new ApiContract();
const DEADLINE_MS = 500;

t.test('Redocly CLI lints the document clean (recommended rules, sidecar/http/redocly.yaml)', async (t) => {
  const bin = join(repoRoot(), 'node_modules', '.bin', 'redocly');
  const r = await runTracked(bin, ['lint', '--config', join(repoRoot(), 'sidecar', 'http', 'redocly.yaml'), OPENAPI_PATH, '--format=summary'], { timeoutMs: 120_000 });
  t.equal(r.exit.code, 0, `redocly lint: ${r.stdout}\n${r.stderr}`);
  t.notMatch(`${r.stdout}${r.stderr}`, /^(error|warning) /m, 'no error and no warning');
});

t.test('the document: version, secrets, examples', async (t) => {
  const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
  const doc = contract.doc as { info: { version: string }; components: { parameters: { token: Record<string, unknown> } } };
  t.equal(doc.info.version, pkg.version, 'info.version follows package.json');
  const token = doc.components.parameters.token;
  t.match(token, { name: 'X-Auth-Token', in: 'header', required: true, schema: { format: 'password' }, 'x-secret': true }, 'the token is marked a secret');
  t.notOk('example' in token || 'examples' in token, 'and has no example');
  t.notMatch(JSON.stringify(contract.doc), /"(Bearer |X-Auth-Token":)/, 'no token value anywhere in the document');
});

let replicas: ReplicaServer[];
let relay: KeyvalsRelay;
let sidecar: RunningSidecar;
let throwOnRandom = false;

t.before(async () => {
  replicas = await startReplicas(4, { net: '127.0.21.', first: 10, port: 18140 });
  // The canary on (its verdict is part of /readyz), its keys replicated to every replica.
  relay = await KeyvalsRelay.start(({ key }) => {
    replicas.forEach((r) => r.give(key));
    return 201;
  });
  sidecar = await startSidecar(
    {
      SYNCER_PEERS: peersEnv(replicas),
      SYNCER_HARD_TIMEOUT_MS: String(DEADLINE_MS),
      SYNCER_PROBE_TIMEOUT_MS: '100',
      SYNCER_RETRY_DELAY_MS: '5',
      SYNCER_MAX_IN_FLIGHT: '4',
      SYNCER_CANARY_INTERVAL_MS: '1000',
      SYNCER_CANARY_TIMEOUT_MS: '500',
      SYNCER_CANARY_URL: relay.url,
    },
    undefined,
    {
      random: () => {
        if (throwOnRandom) throw new Error('planted');
        return 0.5;
      },
      // As in a container with a memory limit: syncer_memory_limit_bytes is exported.
      memoryLimit: () => 320 * 1024 * 1024,
    },
  );
  await waitFor(async () => /^syncer_canary_last_run_timestamp_seconds /m.test(await sidecar.app.telemetry.metrics()), 'a canary run', { timeoutMs: 20_000 });
});
t.teardown(async () => {
  await sidecar.stop();
  await relay.close();
  await Promise.all(replicas.map((r) => r.close()));
});

/** Sends a request and returns the answer as the contract reads it. */
async function call(listener: Listener, base: string, method: string, path: string, headers: Record<string, string> = {}): Promise<SeenAnswer> {
  const pool = new Pool(base);
  try {
    const res = await pool.request({ method: method as 'GET', path, headers });
    const body = await res.body.text();
    return { listener, method, path: path.split('?')[0]!, status: res.statusCode, headers: res.headers, body };
  } finally {
    await pool.close();
  }
}

t.test('every answer the sidecar gives conforms to the document, and the document holds no answer it never gives', async (t) => {
  /** Every answer is held against the document as it arrives. */
  const conforming = async (answer: Promise<SeenAnswer>): Promise<SeenAnswer> => {
    const a = await answer;
    t.same(contract.check(a), [], `${a.listener} ${a.method} ${a.path} → ${a.status} conforms`);
    return a;
  };
  const check = (h: Record<string, string>, path = '/v1/synced', method = 'GET') => conforming(call('check', sidecar.apiUrl, method, path, h));
  const ops = (path: string, method = 'GET') => conforming(call('ops', sidecar.opsUrl, method, path));
  const status = async (a: Promise<SeenAnswer>) => (await a).status;
  const verdictOf = async (a: Promise<SeenAnswer>) => (await a).headers['x-token-status'];
  for (const r of replicas) r.behaviour = { kind: 'store' };

  // Verdicts. pod-0 is the origin; pods 1, 2 and 3 are probed.
  replicas.forEach((r) => r.give('all'));
  t.equal(await verdictOf(check({ 'X-Auth-Token': 'all' })), 'Synced');
  t.equal(JSON.parse((await check({ 'X-Auth-Token': 'all' })).body).cached, true, 'a repeat is answered from the memo');
  replicas[1]!.give('half');
  t.equal(await verdictOf(check({ 'X-Auth-Token': 'half' })), 'NotSynced');
  replicas[1]!.give('most');
  replicas[2]!.give('most');
  t.equal(await verdictOf(check({ 'X-Auth-Token': 'most' })), 'Partialy');
  t.equal(await status(check({ 'X-Auth-Token': 'half' }, '/v1/synced?strict=true')), 403);
  t.equal(await status(check({ 'X-Auth-Token': 'half' }, '/v1/synced?strict=true', 'HEAD')), 403);
  t.equal(await status(check({ 'X-Auth-Token': 'all' }, '/v1/synced', 'HEAD')), 200);
  replicas[3]!.behaviour = { kind: 'hang' };
  t.equal(await verdictOf(check({ 'X-Auth-Token': 'all', 'X-Nginx-Origin': 'pod-1' })), 'Timeout');
  replicas[3]!.behaviour = { kind: 'store' };
  // Shared: concurrent identical checks, held at the peers until all have arrived.
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  replicas.forEach((r) => r.give('shared'));
  replicas[1]!.behaviour = { kind: 'gate', open: gate };
  const both = Promise.all([check({ 'X-Auth-Token': 'shared' }), check({ 'X-Auth-Token': 'shared' })]);
  await waitFor(async () => /^syncer_checks_in_flight 2$/m.test(await sidecar.app.telemetry.metrics()), 'both checks in flight');
  // Overloaded: SYNCER_MAX_IN_FLIGHT=4, two waiting; two more hang, the fifth is refused.
  const more = Promise.all([check({ 'X-Auth-Token': 'x1' }), check({ 'X-Auth-Token': 'x2' })]);
  await waitFor(async () => /^syncer_checks_in_flight 4$/m.test(await sidecar.app.telemetry.metrics()), 'four checks in flight');
  const overloaded = await check({ 'X-Auth-Token': 'x3' });
  t.same([overloaded.status, overloaded.headers['retry-after']], [503, '1'], 'overloaded: 503 + Retry-After');
  t.equal(await status(check({ 'X-Auth-Token': 'x4' }, '/v1/synced', 'HEAD')), 503);
  open();
  const shared = (await both).map((a) => (JSON.parse(a.body) as { shared: boolean }).shared).sort();
  t.same(shared, [false, true], 'one led, one shared');
  await more;

  // Refusals and errors.
  t.equal(await status(check({})), 400);
  t.equal(await status(check({}, '/v1/synced', 'HEAD')), 400);
  t.equal(await status(check({ 'X-Auth-Token': 'tok', 'X-Nginx-Origin': 'bad origin' })), 400);
  t.equal(await status(check({ 'X-Auth-Token': 'tok' }, '/v1/synced?strict=maybe')), 400);
  t.equal(await status(check({ 'X-Auth-Token': 'tok' }, '/nope')), 404);
  t.equal(await status(check({ 'X-Auth-Token': 'tok' }, '/openapi.json')), 404, 'the document is not on the check listener');
  t.equal(await status(check({ 'X-Auth-Token': 'tok' }, '/v1/synced', 'POST')), 405);
  replicas[1]!.give('boom', 50); // pod-1 answers 401 first: the retry decision calls random()
  throwOnRandom = true;
  t.equal(await status(check({ 'X-Auth-Token': 'boom' })), 500);
  t.equal(await status(check({ 'X-Auth-Token': 'boom2' }, '/v1/synced', 'HEAD')), 500);
  throwOnRandom = false;

  // The ops listener.
  t.equal(await status(ops('/healthz')), 200);
  t.equal(await status(ops('/healthz', 'POST')), 405);
  const ready = await ops('/readyz');
  t.equal(ready.status, 200);
  t.match(JSON.parse(ready.body), { canary: { result: 'synced', peers: 3, arrived: 3 } }, "with the canary's last run");
  t.equal(await status(ops('/metrics')), 200);
  t.equal(await status(ops('/nope')), 404);
  const served = await ops('/openapi.json');
  t.same(JSON.parse(served.body), contract.doc, 'GET /openapi.json serves the document itself');

  // Not ready yet (no peer set), a scrape that fails, shutting down.
  const waiting = await startSidecar({ SYNCER_LISTEN_ADDR: '127.0.0.1:0' }, () => ({ start: () => undefined, stop: async () => {} }), {
    telemetry: new (class extends Telemetry {
      override metrics(): Promise<string> {
        return Promise.reject(new Error('planted'));
      }
    })({ defaultMetrics: false }),
  });
  t.equal(await status(conforming(call('check', waiting.apiUrl, 'GET', '/v1/synced', { 'X-Auth-Token': 'tok' }))), 503);
  t.equal(await status(conforming(call('ops', waiting.opsUrl, 'GET', '/readyz'))), 503);
  t.equal(await status(conforming(call('ops', waiting.opsUrl, 'GET', '/metrics'))), 500);
  await waiting.stop();

  const missing = [...contract.documented()].filter((d) => !contract.covered().has(d));
  t.same(missing, [], 'every answer the document describes was given by the running sidecar');
});

t.test('controls: the contract check catches each kind of drift on a real answer', async (t) => {
  replicas.forEach((r) => r.give('control'));
  const real = await call('check', sidecar.apiUrl, 'GET', '/v1/synced', { 'X-Auth-Token': 'control' });
  t.same(contract.check(real), [], 'the real answer conforms');
  const body = JSON.parse(real.body) as Record<string, unknown>;
  const drifted = (change: Partial<SeenAnswer>): SeenAnswer => ({ ...real, ...change });
  const withBody = (b: Record<string, unknown>) => drifted({ body: JSON.stringify(b) });
  const { cached: _dropped, ...withoutCached } = body;
  const cases: Array<[string, SeenAnswer, RegExp]> = [
    ['a field the document does not have', withBody({ ...body, extra: 1 }), /additional properties/],
    ['a required field missing', withBody(withoutCached), /required property 'cached'/],
    ['a verdict outside the enum', withBody({ ...body, verdict: 'Partially' }), /body\/verdict/],
    ['X-Token-Status missing', drifted({ headers: { ...real.headers, 'x-token-status': undefined } }), /header X-Token-Status is required/],
    ['X-Token-Status misspelt', drifted({ headers: { ...real.headers, 'x-token-status': 'Partially' } }), /header X-Token-Status/],
    ['another media type', drifted({ headers: { ...real.headers, 'content-type': 'text/plain' } }), /content type "text\/plain" not documented/],
    ['an undocumented status', drifted({ status: 418 }), /status not documented/],
    ['a body on HEAD', drifted({ method: 'HEAD' }), /a body .* where the document describes none/],
    ['an unknown path', drifted({ path: '/v2/synced' }), /no such operation|status not documented/],
  ];
  for (const [what, answer, expected] of cases) t.match(contract.check(answer).join('\n'), expected, `caught: ${what}`);
});

t.test("the README's metrics table lists exactly the syncer_* metrics /metrics exports", async (t) => {
  const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
  const documented = [...readme.matchAll(/^\| `(syncer_[a-z_]+)(\{[^}]*\})?` \|/gm)].map((m) => m[1]!).sort();
  const live = [...(await sidecar.app.telemetry.metrics()).matchAll(/^# TYPE (syncer_[a-z_]+) /gm)].map((m) => m[1]!).sort();
  t.ok(live.length > 5, `the sidecar exports its metrics (${live.join(', ')})`);
  t.same(documented, live, 'README table ↔ live /metrics');
});
