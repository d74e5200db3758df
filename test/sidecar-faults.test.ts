// The built sidecar with a fault planted (support/plant-fault.ts, loaded with `node --import`;
// nothing in the program can load it): an exception in a timer's callback and a listener's
// 'error' event are contained — an error line, syncer_unexpected_errors_total{source}, and the
// sidecar keeps answering — while an error that escapes every guard ends the process as the
// README says: a fatal line, readiness 503, the checks in flight answered, exit status 70. And a
// flood of connections past a 96-descriptor limit leaves the process alive and serving.
import { connect, type Socket } from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { http } from './support/net.js';
import { repoRoot } from './support/repo-root.js';
import { startReplicas, type ReplicaServer } from './support/replica-server.js';
import { requirePart } from './support/required.js';
import { peersEnv } from './support/sidecar-app.js';
import { MAIN_JS, startSidecarProcess, type LogLine, type SidecarProcess } from './support/sidecar-process.js';
import { waitFor } from './support/wait.js';

const NET = '127.0.53.';
const PORT = 18090;
const PLANT = join(repoRoot(), 'dist', 'test', 'support', 'plant-fault.js');
/**
 * The same program before bundling (tsc's output of the same source): a fault planted inside a
 * module (the probe's timeout) must patch the module the program runs, and the bundle inlines
 * its modules where nothing from outside reaches them. The plants on Node's own objects (a
 * listener's error, a timer, a rejection) run against the bundle as shipped.
 */
const UNBUNDLED_MAIN = join(repoRoot(), 'dist', 'sidecar', 'main.js');

interface Planted {
  readonly sidecar: SidecarProcess;
  /** pod-1 and pod-2: the origin, pod-0, is not among them, so a check probes both. */
  readonly replicas: readonly ReplicaServer[];
}

/** Two replicas on NET.<first>, .<first + 1>, and the built sidecar in front of them, with `fault` planted (or none). */
async function start(t: { teardown(fn: () => Promise<unknown>): void }, first: number, fault: string | undefined, env: Record<string, string> = {}, argv?: readonly string[]): Promise<Planted> {
  requirePart(existsSync(MAIN_JS) ? undefined : `${MAIN_JS} is missing: run \`npm run build\``);
  const replicas = await startReplicas(2, { net: NET, first, port: PORT });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const planted: Record<string, string> = fault === undefined ? {} : { NODE_OPTIONS: `--import=${pathToFileURL(PLANT).href}`, PLANT_FAULT: fault };
  const sidecar = await startSidecarProcess(
    { POD_NAME: 'pod-0', SYNCER_DISCOVERY: 'static', SYNCER_PEERS: peersEnv(replicas, (i) => `pod-${i + 1}`), ...planted, ...env },
    argv === undefined ? {} : { argv },
  );
  t.teardown(() => sidecar.stop('SIGKILL'));
  return { sidecar, replicas };
}

/** The value of syncer_unexpected_errors_total{source} now. */
async function unexpectedErrors(sidecar: SidecarProcess, source: string): Promise<number> {
  const text = await (await fetch(`${sidecar.opsUrl}/metrics`)).text();
  const m = new RegExp(`^syncer_unexpected_errors_total\\{source="${source}"\\} (\\d+)$`, 'm').exec(text);
  if (m === null) throw new Error(`no syncer_unexpected_errors_total{source="${source}"} in /metrics`);
  return Number(m[1]);
}

const contained = (sidecar: SidecarProcess, where: string): LogLine[] => sidecar.lines.filter((l) => l['level'] === 50 && l['where'] === where);

t.test('a timer whose callback throws (every probe timeout, planted): contained, and the sidecar keeps answering', async (t) => {
  const { sidecar, replicas } = await start(t, 10, 'probe-timeout', { SYNCER_HARD_TIMEOUT_MS: '1000', SYNCER_PROBE_TIMEOUT_MS: '200' }, [process.execPath, UNBUNDLED_MAIN]);
  const token = `timer-${process.pid}`;
  for (const r of replicas) r.give(token);
  replicas[0]!.behaviour = { kind: 'hang' };
  const reply = await sidecar.check(token);
  t.same(
    [reply.status, reply.tokenStatus, reply.body.peers?.map((p) => `${p.name}:${p.outcome}`)],
    [200, 'Timeout', ['pod-1:timeout', 'pod-2:synced']],
    'the check whose probe timed out is answered at its deadline',
  );
  await waitFor(() => contained(sidecar, 'probe timeout sweep').length > 0, 'the error line');
  t.match(contained(sidecar, 'probe timeout sweep')[0], { source: 'timer', err: { message: 'planted: a probe timeout that throws' }, msg: 'unexpected error, contained: the sidecar goes on with its last good state' });
  t.ok((await unexpectedErrors(sidecar, 'timer')) >= 1, 'counted as source="timer"');
  const after = `after-${token}`;
  replicas[1]!.give(after);
  const next = await sidecar.check(after, 'pod-1');
  t.same([next.status, next.tokenStatus], [200, 'Synced'], 'the next check is answered');
  t.equal(sidecar.process.exitStatus(), undefined, 'the process runs on');
});

t.test("a listener's 'error' event (a failed accept, planted on both): contained, both keep serving", async (t) => {
  const { sidecar, replicas } = await start(t, 12, 'accept-error');
  await waitFor(async () => (await fetch(`${sidecar.opsUrl}/readyz`)).status === 200, 'readiness');
  sidecar.child.kill('SIGUSR2');
  await waitFor(() => contained(sidecar, 'the check listener').length + contained(sidecar, 'the ops listener').length === 2, 'an error line for each listener');
  t.match(contained(sidecar, 'the check listener')[0], { source: 'event', err: { message: 'accept ENOBUFS', code: 'ENOBUFS' } });
  t.equal(await unexpectedErrors(sidecar, 'event'), 2, 'counted as source="event", once per listener');
  const token = `event-${process.pid}`;
  for (const r of replicas) r.give(token);
  t.same([(await sidecar.check(token)).tokenStatus, (await http(`${sidecar.opsUrl}/healthz`)).status], ['Synced', 200], 'both listeners answer');
  t.equal(sidecar.process.exitStatus(), undefined, 'the process runs on');
});

t.test('an error that escapes every guard (a bare timer throws, planted): fatal line, in-flight check answered, exit 70', async (t) => {
  const { sidecar, replicas } = await start(t, 14, 'escape', { SYNCER_HARD_TIMEOUT_MS: '10000', SYNCER_PROBE_TIMEOUT_MS: '9000' });
  const token = `escape-${process.pid}`;
  for (const r of replicas) r.give(token);
  let open!: () => void;
  replicas[1]!.behaviour = { kind: 'gate', open: new Promise<void>((resolve) => (open = resolve)) };
  const answer = sidecar.check(token);
  await waitFor(() => replicas[1]!.requestsFor(token) > 0, 'the check to reach the held peer');
  sidecar.child.kill('SIGUSR2');
  await waitFor(() => sidecar.lines.some((l) => l['level'] === 60), 'the fatal line');
  t.match(sidecar.lines.find((l) => l['level'] === 60), {
    origin: 'uncaughtException',
    err: { message: 'planted: an error no guard covers' },
    msg: 'an error escaped every guard: draining, then exiting with status 70 so that the container restarts clean',
  });
  t.same((await http(`${sidecar.opsUrl}/readyz`)).status, 503, 'readiness is 503 while it drains');
  open();
  const reply = await answer;
  t.same([reply.status, reply.tokenStatus], [200, 'Synced'], 'the check in flight got its verdict');
  t.equal(await sidecar.exited, 70, 'exit status 70');
});

t.test('a rejection nobody handles (planted) ends the process the same way', async (t) => {
  const { sidecar } = await start(t, 16, 'escape-rejection');
  sidecar.child.kill('SIGUSR2');
  t.equal(await sidecar.exited, 70, 'exit status 70');
  t.match(sidecar.lines.find((l) => l['level'] === 60), { origin: 'unhandledRejection', err: { message: 'planted: a rejection nobody handles' } });
});

t.test('a flood of connections past a 96-descriptor limit: the process lives through it and serves once it ends', async (t) => {
  const LIMIT = 96;
  requirePart(['/usr/bin/prlimit', '/bin/prlimit'].some((p) => existsSync(p)) ? undefined : 'prlimit is not installed (util-linux)');
  const { sidecar, replicas } = await start(t, 18, undefined, {}, ['prlimit', `--nofile=${LIMIT}:${LIMIT}`, process.execPath, MAIN_JS]);
  const pid = sidecar.process.pid;
  t.match(readFileSync(`/proc/${pid}/limits`, 'utf8'), new RegExp(`^Max open files\\s+${LIMIT}\\s+${LIMIT}\\s`, 'm'), 'the limit applies to the sidecar');
  const descriptors = (): number => readdirSync(`/proc/${pid}/fd`).length;
  const idle = descriptors();
  const flood: Socket[] = [];
  let refused = 0;
  for (const url of [sidecar.apiUrl, sidecar.opsUrl]) {
    const { hostname, port } = new URL(url);
    for (let i = 0; i < 2 * LIMIT; i++) {
      const socket = connect(Number(port), hostname);
      // A connection beyond the limit is accepted and closed at once (libuv's reserve descriptor).
      socket.on('error', () => undefined).on('close', () => refused++);
      flood.push(socket);
    }
  }
  t.teardown(() => flood.forEach((s) => s.destroy()));
  await waitFor(() => descriptors() >= LIMIT - 1 && refused > 0, 'the sidecar at its limit, turning connections away');
  t.comment(`descriptors: ${idle} idle, ${descriptors()} under the flood; ${refused} of ${flood.length} connections turned away`);
  t.equal(sidecar.process.exitStatus(), undefined, 'alive at the limit');
  flood.forEach((s) => s.destroy());
  await waitFor(() => descriptors() <= idle + 8, 'the flood’s descriptors released');
  const token = `flood-${process.pid}`;
  for (const r of replicas) r.give(token);
  t.same([(await sidecar.check(token)).tokenStatus, (await http(`${sidecar.opsUrl}/readyz`)).status], ['Synced', 200], 'checks and readiness answered after the flood');
  t.equal(await unexpectedErrors(sidecar, 'event'), 0, 'nothing reached a listener as an error: libuv absorbs EMFILE');
  t.notOk(sidecar.lines.some((l) => Number(l['level']) >= 50), 'no error line');
});
