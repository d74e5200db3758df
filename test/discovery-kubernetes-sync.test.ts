// Deployment scope never publishes while one of its watches has not delivered its first list.
// With the ReplicaSets unlisted no pod is owned by the Deployment, with the pods unlisted there
// are none: either way the set would be empty, and an empty set answers Synced for every token.
// The scripted API holds each list until the test answers it, so both orders are forced; the
// checks go to the real sidecar (in-process) and probe a real HTTP replica.
import t from 'tap';
import { createKubernetesSource } from '../sidecar/discovery/kubernetes/kubernetes-source.js';
import { deploymentJson, flush, ManualClock, names, podJson, replicaSetJson } from './support/discovery-harness.js';
import { objectList, ScriptedApi } from './support/discovery-scripted-api.js';
import { freePort, http } from './support/net.js';
import { ReplicaServer } from './support/replica-server.js';
import { sendCheck, startSidecar } from './support/sidecar-app.js';

const NS = 'apigw';
const DEP = 'gw';
const DEP_UID = 'dep-uid';
const RS_UID = 'rs2';
/** Past the coalescing window (SYNCER_COALESCE_MS), so every triggered recomputation has run. */
const SETTLE_MS = 1_000;

const WATCHES = ['replicasets', 'pods'] as const;
type Watched = (typeof WATCHES)[number];

for (const first of WATCHES) {
  const second: Watched = first === 'pods' ? 'replicasets' : 'pods';
  t.test(`deployment scope, ${first} listed before ${second}: nothing is published until both are`, async (t) => {
    const replica = await ReplicaServer.start({ host: '127.0.0.1', port: await freePort() });
    t.teardown(() => replica.close());
    const api = new ScriptedApi();
    const clock = new ManualClock();
    const sidecar = await startSidecar(
      {
        SYNCER_DISCOVERY: 'kubernetes',
        POD_NAME: 'gw-own',
        POD_NAMESPACE: NS,
        SYNCER_DEPLOYMENT: DEP,
        SYNCER_PEER_SCOPE: 'deployment',
        SYNCER_PROBE_PORT: String(replica.port),
        SYNCER_MAX_RETRIES: '0',
        SYNCER_SYNCED_TTL_MS: '0',
      },
      (deps) => createKubernetesSource(deps, { http: api, clock }),
    );
    t.teardown(() => sidecar.stop());
    const store = sidecar.app.store;
    const objects: Record<Watched, (rv: string) => Record<string, unknown>> = {
      replicasets: (rv) => replicaSetJson('gw-new', RS_UID, DEP_UID, '2', rv),
      pods: (rv) => podJson('gw-1', { rsUid: RS_UID, ip: replica.host, ready: 'True', rv }),
    };
    const settle = async (): Promise<void> => {
      await flush();
      await clock.advance(SETTLE_MS);
    };
    const nothingPublished = async (when: string): Promise<void> => {
      t.equal(store.current(), undefined, `${when}: no set published`);
      const check = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'tok-unknown' });
      t.same([check.status, check.tokenStatus, check.body.error], [503, undefined, 'discovery has not produced a peer set yet'], `${when}: checks answer 503 not_ready`);
      t.equal((await http(`${sidecar.opsUrl}/readyz`)).status, 503, `${when}: not ready`);
    };

    await flush();
    api.heldList('/deployments').answer(objectList('10', deploymentJson(DEP, DEP_UID, '2')));
    await settle();
    t.same(api.heldLists.map((l) => l.path.split('/').at(-1)).sort(), ['pods', 'replicasets'], 'the Deployment is known: both watches are listing');
    await nothingPublished('only the Deployment listed');

    api.heldList(`/${first}`).answer(objectList('11', objects[first]('11')));
    await settle();
    await nothingPublished(`${first} listed, ${second} not yet`);

    // Events on the synced watch recompute again: still nothing.
    const watch = api.watches.find((w) => w.path.endsWith(`/${first}`));
    t.ok(watch, `the ${first} watch is open`);
    watch?.open();
    watch?.send('MODIFIED', objects[first]('12'));
    await settle();
    await nothingPublished(`an event on ${first}, ${second} still not listed`);

    api.heldList(`/${second}`).answer(objectList('13', objects[second]('13')));
    await settle();
    t.same(names(store.current()?.peers ?? []), ['gw-1'], 'published once both are listed');
    t.same(store.current()?.peers[0], { name: 'gw-1', host: replica.host, port: replica.port });
    const missing = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'tok-not-replicated' });
    t.same([missing.status, missing.tokenStatus], [200, 'NotSynced'], 'a token the peer lacks is not Synced');
    replica.give('tok-replicated');
    const held = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': 'tok-replicated' });
    t.same([held.status, held.tokenStatus, held.body.peers?.map((p) => [p.name, p.outcome])], [200, 'Synced', [['gw-1', 'synced']]], 'a token the peer holds is Synced, after probing it');
  });
}
