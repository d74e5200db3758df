// nginx gave up → the slot is free. The built sidecar, checks held by a peer that does not answer
// yet, and clients that go away before their verdict, the way nginx does when its
// proxy_read_timeout fires or its client disconnects: it closes the connection to the sidecar.
// Such a request stops counting against SYNCER_MAX_IN_FLIGHT at once; a fan-out it shared keeps
// running for the requests still waiting; one nobody waits for any more is ended, its probes cut.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { startReplicas } from './support/replica-server.js';
import { peersEnv } from './support/sidecar-app.js';
import { startSidecarProcess, type SidecarProcess } from './support/sidecar-process.js';
import { waitFor } from './support/wait.js';

const MAX_IN_FLIGHT = 3;

/** A check on a connection of its own, as nginx sends it; `close()` is nginx giving up. */
interface RawCheck {
  /** The status line and X-Token-Status of the answer, or why there was none. */
  readonly answer: Promise<string>;
  close(): void;
}

function rawCheck(s: SidecarProcess, token: string): RawCheck {
  const { hostname, port } = new URL(s.apiUrl);
  const sock: Socket = connect(Number(port), hostname);
  const answer = new Promise<string>((resolve) => {
    let data = '';
    sock.on('data', (c: Buffer) => (data += c.toString('latin1')));
    sock.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    sock.on('close', () => {
      const status = data.split('\r\n')[0] ?? '';
      const verdict = /^x-token-status: (\S+)/im.exec(data)?.[1];
      resolve(data === '' ? 'no answer' : `${status}${verdict === undefined ? '' : ` ${verdict}`}`);
    });
  });
  sock.write(`GET /v1/synced HTTP/1.1\r\nHost: sidecar\r\nX-Auth-Token: ${token}\r\nConnection: close\r\n\r\n`);
  return { answer, close: () => sock.destroy() };
}

async function metric(s: SidecarProcess, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${s.opsUrl}/metrics`)).text();
  const value = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1];
  return value === undefined ? undefined : Number(value);
}

const inFlight = (s: SidecarProcess, n: number): Promise<unknown> =>
  waitFor(async () => (await metric(s, 'syncer_checks_in_flight')) === n, `${n} checks in flight`, { intervalMs: 20 });

t.test('a check whose client goes away frees its slot at once; a shared fan-out goes on for the others', async (t) => {
  const replicas = await startReplicas(2, { net: '127.0.22.', first: 10, port: 18134 });
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const peer = replicas[1]!;
  let open!: () => void;
  // The peer holds every answer until the test opens the gate: checks stay in flight, on no timer.
  peer.behaviour = { kind: 'gate', open: new Promise<void>((resolve) => (open = resolve)) };
  const s = await startSidecarProcess({
    POD_NAME: 'pod-0',
    SYNCER_DISCOVERY: 'static',
    SYNCER_PEERS: peersEnv(replicas),
    SYNCER_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
    // Far beyond the test: only the clients going away, or the gate, end these checks.
    SYNCER_HARD_TIMEOUT_MS: '60000',
    SYNCER_PROBE_TIMEOUT_MS: '55000',
    LOG_LEVEL: 'info',
  });
  t.teardown(() => s.stop('SIGKILL'));
  const token = (name: string): string => `abandoned-${process.pid}-${name}`;
  for (const name of ['shared', 'alone', 'late-1', 'late-2']) peer.give(token(name));

  const sharedFirst = rawCheck(s, token('shared'));
  const sharedSecond = rawCheck(s, token('shared'));
  const alone = rawCheck(s, token('alone'));
  await inFlight(s, 3);
  await waitFor(() => peer.inFlight === 2, 'one probe per fan-out to reach the peer');
  t.equal((await s.check(token('refused'))).status, 503, `${MAX_IN_FLIGHT} checks wait: the next distinct one is refused`);

  sharedFirst.close();
  await inFlight(s, 2);
  t.equal(peer.inFlight, 2, 'the shared fan-out goes on for the request still waiting');
  alone.close();
  await inFlight(s, 1);
  await waitFor(() => peer.inFlight === 1, 'the probe of the fan-out nobody waits for to be cut');

  // Two slots are free again, at once, though the checks that left are far from their deadline.
  const late = [rawCheck(s, token('late-1')), rawCheck(s, token('late-2'))];
  await inFlight(s, 3);
  t.equal((await s.check(token('refused'))).status, 503, 'and the bound holds with them');

  open();
  t.same(
    await Promise.all([sharedSecond.answer, ...late.map((c) => c.answer)]),
    ['HTTP/1.1 200 OK Synced', 'HTTP/1.1 200 OK Synced', 'HTTP/1.1 200 OK Synced'],
    'the request that stayed gets the shared verdict, and the admitted ones theirs',
  );
  t.same(await Promise.all([sharedFirst.answer, alone.answer]), ['no answer', 'no answer']);
  // /metrics is rendered at most every 100 ms: wait for a render after the answers.
  await inFlight(s, 0);
  t.equal(await metric(s, 'syncer_checks_rejected_total{reason="abandoned"}'), 2, 'the two that left are counted abandoned');
  t.equal(peer.requestsFor(token('alone')), 1, 'the ended fan-out sent nothing more');
});
