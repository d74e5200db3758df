// The built program as a child process: configuration errors, a normal run, and SIGTERM mid-check.
import t from 'tap';
import { startReplicas } from './support/replica-server.js';
import { peersEnv } from './support/sidecar-app.js';
import { runSidecarCommand, startSidecarProcess } from './support/sidecar-process.js';
import { waitFor } from './support/wait.js';

t.test('bad configuration: every problem at once on stderr, exit status 2', async (t) => {
  const r = await runSidecarCommand([], { SYNCER_HARD_TIMEOUT_MS: '-1', SYNCER_PROBE_PORT: 'eighty', SYNCER_DISCOVERY: 'dns' }, { timeoutMs: 20_000 });
  t.equal(r.exit.code, 2);
  t.match(r.stderr, /SYNCER_HARD_TIMEOUT_MS: must be between 1 and 120000/);
  t.match(r.stderr, /SYNCER_PROBE_PORT: must be an integer/);
  t.match(r.stderr, /SYNCER_DNS_NAME: is required when SYNCER_DISCOVERY=dns/);
  t.match(r.stderr, /3 configuration error\(s\)/);
  t.equal(r.stdout, '', 'nothing started, nothing logged');
});

t.test('unknown command: usage, exit status 2', async (t) => {
  const r = await runSidecarCommand(['serve'], {}, { timeoutMs: 20_000 });
  t.equal(r.exit.code, 2);
  t.match(r.stderr, /usage: apigw-syncer \[peers\]/);
});

t.test('SIGTERM while a check is in flight: the check gets its answer, then exit 0', async (t) => {
  const replicas = await startReplicas(3, { net: '127.0.1.', first: 30, port: 18082 });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const sidecar = await startSidecarProcess({
    POD_NAME: 'pod-0',
    POD_NAMESPACE: 'test',
    SYNCER_DISCOVERY: 'static',
    SYNCER_PEERS: peersEnv(replicas),
    SYNCER_HARD_TIMEOUT_MS: '3000',
    SYNCER_MAX_RETRIES: '50',
    SYNCER_RETRY_MAX_DELAY_MS: '20',
  });
  t.teardown(() => sidecar.stop('SIGKILL'));
  await waitFor(async () => (await fetch(`${sidecar.opsUrl}/readyz`)).status === 200, 'readiness');

  const token = `proc-${process.pid}-SECRETMARK`;
  replicas[1]!.give(token);
  replicas[2]!.give(token, 400); // still missing when SIGTERM arrives
  const answer = sidecar.check(token);
  await waitFor(() => replicas[2]!.requestsFor(token) > 0, 'the check to reach the lagging peer');
  sidecar.child.kill('SIGTERM');
  await waitFor(() => sidecar.lines.some((l) => l['msg'] === 'shutting down: refusing new checks, finishing in-flight ones'), 'draining');
  const refused = await sidecar.check(token).then(
    (r) => r.status,
    () => 'connection refused',
  );
  t.not(refused, 200, `a new check during shutdown is not served (${refused})`);

  const reply = await answer;
  t.same([reply.status, reply.tokenStatus], [200, 'Synced'], 'the in-flight check finished with its verdict');
  t.ok(reply.elapsedMs >= 390, `it waited for the lagging peer (${reply.elapsedMs.toFixed(0)} ms)`);
  t.equal(await sidecar.exited, 0, 'exit code 0');
  t.ok(sidecar.lines.some((l) => l['msg'] === 'stopped'), 'logged a clean stop');
  for (const line of sidecar.lines) {
    t.equal(line['pod'], 'pod-0', 'every line names the pod');
    t.equal(line['namespace'], 'test', 'and the namespace');
  }
  t.notMatch(JSON.stringify(sidecar.lines) + sidecar.stderr(), /SECRETMARK/, 'the token is in no log line');
});
