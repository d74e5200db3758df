// The built program as a child process: configuration errors, a normal run, and SIGTERM mid-check.
import t from 'tap';
import { Agent } from 'node:http';
import { http } from './support/net.js';
import { startReplicas } from './support/replica-server.js';
import { peersEnv } from './support/sidecar-app.js';
import { runSidecarCommand, startSidecarProcess } from './support/sidecar-process.js';
import { waitFor } from './support/wait.js';

t.test('bad configuration: every problem at once on stderr, exit status 2', async (t) => {
  const r = await runSidecarCommand([], { SYNCER_HARD_TIMEOUT_MS: '-1', SYNCER_PROBE_PORT: 'eighty', SYNCER_DISCOVERY: 'dns', SYNCER_MAX_IN_FLIGHT: '0' }, { timeoutMs: 20_000 });
  t.equal(r.exit.code, 2);
  t.same(r.stderr.split('\n'), [
    'apigw-syncer: configuration error: SYNCER_DNS_NAME: is required when SYNCER_DISCOVERY=dns',
    'apigw-syncer: configuration error: SYNCER_PROBE_PORT: must be an integer, got "eighty"',
    'apigw-syncer: configuration error: SYNCER_HARD_TIMEOUT_MS: must be between 1 and 120000, got -1: every check would be answered Timeout',
    'apigw-syncer: configuration error: SYNCER_MAX_IN_FLIGHT: must be between 1 and 100000, got 0: every check would be refused as overloaded',
    "apigw-syncer: 4 configuration error(s); see the README's configuration table",
    '',
  ], 'exactly the four errors and their count');
  t.equal(r.stdout, '', 'nothing started, nothing logged');
});

t.test('unknown command: usage, exit status 2', async (t) => {
  const r = await runSidecarCommand(['serve'], {}, { timeoutMs: 20_000 });
  t.equal(r.exit.code, 2);
  t.match(r.stderr, /usage: apigw-syncer \[peers\]/);
});

t.test('SIGTERM while a check is in flight: the check gets its answer, a kept-alive connection gets 503, then exit 0', async (t) => {
  const replicas = await startReplicas(3, { net: '127.0.1.', first: 30, port: 18082 });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const sidecar = await startSidecarProcess({
    POD_NAME: 'pod-0',
    POD_NAMESPACE: 'test',
    SYNCER_DISCOVERY: 'static',
    SYNCER_PEERS: peersEnv(replicas),
    // Far beyond the test: the in-flight check ends when the test opens pod-2's gate, not on a timer.
    SYNCER_HARD_TIMEOUT_MS: '60000',
    SYNCER_PROBE_TIMEOUT_MS: '55000',
  });
  t.teardown(() => sidecar.stop('SIGKILL'));
  await waitFor(async () => (await fetch(`${sidecar.opsUrl}/readyz`)).status === 200, 'readiness');

  // nginx's upstream keepalive: a connection opened and used before SIGTERM, idle when it comes.
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => keepAlive.destroy());
  const kept = (token: string) => http(`${sidecar.apiUrl}/v1/synced`, { agent: keepAlive, timeoutMs: 5_000, headers: { 'X-Auth-Token': token, 'X-Nginx-Origin': 'pod-2' } });
  const warm = `warm-${process.pid}-SECRETMARK`;
  for (const r of replicas) r.give(warm);
  const before = await kept(warm);
  t.same([before.status, before.headers['x-token-status'], before.reusedSocket], [200, 'Synced', false], 'the kept connection served a check before SIGTERM');

  const token = `proc-${process.pid}-SECRETMARK`;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  replicas[1]!.give(token);
  replicas[2]!.give(token);
  replicas[2]!.behaviour = { kind: 'gate', open: gate }; // holds its answer until the test opens it
  const answer = sidecar.check(token);
  await waitFor(() => replicas[2]!.requestsFor(token) > 0, 'the check to reach the held peer');
  sidecar.child.kill('SIGTERM');
  await waitFor(() => sidecar.lines.some((l) => l['msg'] === 'shutting down: refusing new checks, finishing in-flight ones'), 'draining');

  const ready = await http(`${sidecar.opsUrl}/readyz`);
  t.same([ready.status, JSON.parse(ready.body)], [503, { status: 'shutting down' }], '/readyz is 503 while draining');
  // pod-2 is the origin: the peers this check would probe (pod-1) hold the token and answer at once.
  const onKept = await kept(warm);
  t.same(
    [onKept.status, onKept.reusedSocket, onKept.headers['connection'], onKept.headers['x-token-status'], JSON.parse(onKept.body)],
    [503, true, 'close', undefined, { error: 'shutting down' }],
    'a check on the kept-alive connection gets 503 + Connection: close, not a verdict or a reset',
  );
  const fresh = await sidecar.check(warm, 'pod-2').then(
    (r) => r.status,
    () => 'connection refused',
  );
  t.not(fresh, 200, `a check on a new connection during shutdown is not served (${fresh})`);

  t.equal(sidecar.child.exitCode, null, 'still running while its check waits');
  open();
  const reply = await answer;
  t.same([reply.status, reply.tokenStatus], [200, 'Synced'], 'the in-flight check finished with its verdict');
  t.equal(await sidecar.exited, 0, 'exit code 0');
  t.ok(sidecar.lines.some((l) => l['msg'] === 'stopped'), 'logged a clean stop');
  for (const line of sidecar.lines) {
    t.equal(line['pod'], 'pod-0', 'every line names the pod');
    t.equal(line['namespace'], 'test', 'and the namespace');
  }
  t.notMatch(JSON.stringify(sidecar.lines) + sidecar.stderr(), /SECRETMARK/, 'the token is in no log line');
});
