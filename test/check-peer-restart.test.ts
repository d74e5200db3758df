// A peer restarted at the same address. With static or DNS discovery no event says so, and the
// restarted nginx has lost its token store until zone_sync refills it: a Synced remembered from
// before is no longer true. The built sidecar, real nginx peers: the peer's restart closes the
// sidecar's kept-alive connections to it, and that alone makes the memo forget.
import t from 'tap';
import { freePort } from './support/net.js';
import { nginxMissing, removePodDir, startNginxPod, writeToken, type NginxPod, type NginxPodOptions } from './support/nginx.js';
import { requirePart } from './support/required.js';
import { startSidecarProcess } from './support/sidecar-process.js';
import { connectionsOf } from './support/tcp-sockets.js';
import { waitFor } from './support/wait.js';

t.test('a peer restarted at the same address: the memo forgets, the next check asks it again', async (t) => {
  requirePart(nginxMissing());
  const [port, probePort] = [await freePort(), await freePort()];
  const podOptions = (i: number): NginxPodOptions => ({ name: `pod-${i}`, host: `127.0.23.${10 + i}`, port, probePort, sidecarAddr: '127.0.0.1:1' });
  const pods = new Map<string, NginxPod>();
  const start = async (i: number, apiPort?: number): Promise<NginxPod> => {
    const pod = await startNginxPod({ ...podOptions(i), apiPort });
    pods.set(pod.name, pod);
    return pod;
  };
  const stop = async (pod: NginxPod): Promise<void> => {
    await pod.stop();
    await removePodDir(pod);
  };
  t.teardown(() => Promise.all([...pods.values()].map(stop)));
  const [stays, restarts] = [await start(1), await start(2)];
  const s = await startSidecarProcess({
    POD_NAME: 'pod-0',
    SYNCER_DISCOVERY: 'static',
    SYNCER_PEERS: [stays, restarts].map((p) => `${p.name}=${p.host}:${probePort}`).join(','),
    SYNCER_PROBE_PORT: String(probePort),
    LOG_LEVEL: 'info',
  });
  t.teardown(() => s.stop());

  const token = `restart-${process.pid}`;
  await Promise.all([stays, restarts].map((p) => writeToken(p.apiUrl, token)));
  const first = await s.check(token);
  t.same([first.tokenStatus, first.body.cached], ['Synced', false]);
  const repeat = await s.check(token);
  t.same([repeat.tokenStatus, repeat.body.cached], ['Synced', true], 'remembered: the repeat is answered from the memo');
  const held = connectionsOf(s.process.pid, probePort).filter((c) => c.remote === restarts.host);
  t.ok(held.length > 0, 'the sidecar keeps a connection to the peer between checks');

  // The peer restarts where it was: its token store comes back empty.
  await stop(restarts);
  pods.delete(restarts.name);
  const restarted = await start(2, restarts.apiPort);
  // The sidecar has dealt with the close of every connection it held to the old nginx.
  await waitFor(
    () => connectionsOf(s.process.pid, probePort, true).every((c) => !held.some((h) => h.inode === c.inode)),
    'the sidecar to close its connections to the old nginx',
  );
  t.equal(restarted.host, restarts.host, 'the same address');

  const after = await s.check(token);
  t.same(
    [after.tokenStatus, after.body.cached, (after.body.peers ?? []).map((p) => [p.name, p.outcome])],
    [
      'NotSynced',
      false,
      [
        ['pod-1', 'synced'],
        ['pod-2', 'missing'],
      ],
    ],
    'probed again: the restarted peer lacks the token',
  );
  await writeToken(restarted.apiUrl, token); // zone_sync refilled it
  t.same([(await s.check(token)).tokenStatus, (await s.check(token)).body.cached], ['Synced', true], 'remembered again once Synced');
});
