// `npm run demo` as a newcomer meets it: the one-shot form prints the scenario table and exits by
// itself; the default form keeps serving until Ctrl-C, and what it prints works — the curl line
// gets a verdict, /metrics has the per-peer series, and the canary names the replica that stops
// receiving writes — then Ctrl-C stops it, its sidecar included.
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { http } from './support/net.js';
import { collectOutput, runTracked, spawnTracked, withPath } from './support/processes.js';
import { repoRoot } from './support/repo-root.js';
import { sendCheck } from './support/sidecar-app.js';
import { waitFor } from './support/wait.js';

const DEMO_JS = join(repoRoot(), 'dist', 'test', 'demo', 'demo.js');
const VERDICTS = [
  ['token already on every replica', 'Synced'],
  ['replication lag of 120 ms', 'Synced'],
  ['one replica never receives it', 'Partialy'],
  ['only one other replica has it', 'NotSynced'],
  ['one replica hangs (no answer)', 'Timeout'],
] as const;

const escape = (text: string): string => text.replace(/[()]/g, '\\$&');

function assertTable(t: { match(found: string, wanted: RegExp, message: string): boolean }, output: string): void {
  for (const [scenario, verdict] of VERDICTS) t.match(output, new RegExp(`^${escape(scenario)} +${verdict} +\\d+ ms +apigw-1:`, 'm'), `${scenario}: ${verdict}`);
}

t.test('--once: the table, then it exits by itself', async (t) => {
  const r = await runTracked(process.execPath, [DEMO_JS, '--once'], { env: withPath({}), timeoutMs: 120_000 });
  t.equal(r.exit.code, 0, r.stderr);
  assertTable(t, r.stdout);
  t.notMatch(r.stdout, /Serving until Ctrl-C|curl/, 'no invitation to a server that is gone');
});

t.test('serving: the printed commands work, the canary names the replica cut off, Ctrl-C ends it all', async (t) => {
  const demo = spawnTracked(process.execPath, [DEMO_JS], { env: withPath({}), stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collectOutput(demo.child);
  const lines: string[] = [];
  createInterface({ input: demo.child.stdout! }).on('line', (l) => lines.push(l));
  t.teardown(() => demo.stop(1_000, 'SIGKILL'));
  const context = () => `${output.stdout()}\n${output.stderr()}`;
  const abortIf = () => (demo.exitStatus() === undefined ? undefined : new Error(`the demo exited: ${context()}`));
  await waitFor(() => lines.some((l) => l.startsWith('Serving until Ctrl-C')), 'the demo to serve', { timeoutMs: 120_000, abortIf });
  assertTable(t, output.stdout());

  const curl = lines.map((l) => /curl -i -H 'X-Auth-Token: (\S+)' (\S+)\/v1\/synced/.exec(l)).find((m) => m !== null);
  const ops = lines.map((l) => /curl -s (\S+)\/metrics/.exec(l)).find((m) => m !== null)?.[1];
  t.ok(curl && ops, 'the curl lines name the listeners');
  const reply = await sendCheck(curl![2]!, { 'X-Auth-Token': curl![1]! });
  t.equal(reply.tokenStatus, 'Synced', "the first curl line's check: Synced");
  const metrics = (await http(`${ops}/metrics`)).body;
  t.match(metrics, /^syncer_peer_replication_delay_seconds_count\{peer="apigw-1"\} [1-9]/m, 'per-peer series');
  t.notMatch(metrics, /peer="apigw-0"/, 'none for its own pod');

  const named = await waitFor(() => lines.find((l) => /^canary: not reached: apigw-3 \(missing\)/.test(l)), 'the canary to name apigw-3', { timeoutMs: 60_000, abortIf, context });
  t.comment(named);
  t.ok(lines.indexOf(named) > lines.findIndex((l) => l.startsWith('apigw-3 stops receiving writes now')), 'after the cut');
  const ready = JSON.parse((await http(`${ops}/readyz`)).body) as { status: string; canary: { notArrived: Array<{ name: string }> } };
  t.equal(ready.status, 'ready');
  t.same(ready.canary.notArrived.map((p) => p.name), ['apigw-3']);
  t.match((await http(`${ops}/metrics`)).body, /^syncer_canary_peer_results_total\{peer="apigw-3",result="missing"\} [1-9]/m);

  const exit = await demo.stop(30_000, 'SIGINT');
  t.same(exit, { code: 0, signal: null }, 'Ctrl-C: a clean exit');
  await t.rejects(http(`${ops}/readyz`), 'its sidecar is stopped too');
});
