// Peer churn under load (pods 1–3 are never removed: every check counts them, so each token class has one right verdict): hundreds of checks in flight against real nginx peers while the peer set
// changes under them every few tens of milliseconds — peers removed, added back, and replaced (the
// same pod name at a new address, as a restarted pod gets). No check may get a verdict the churn
// explains wrongly: each must be the truth about the peers of the set it started with, minus those
// that left during it (reported `departed`). Afterwards only the final set's peers have
// connections, within the cap.
import t from 'tap';
import type { Peer } from '../sidecar/model.js';
import { churnTurn } from './support/churn.js';
import { nginxMissing, startNginxPeers, writeTokens, type NginxPeers } from './support/nginx.js';
import { sendCheck, startSidecar, type CheckReply, type RunningSidecar } from './support/sidecar-app.js';
import { connectionsOf } from './support/tcp-sockets.js';
import { waitFor } from './support/wait.js';

const CAP = 8; // the default SYNCER_PROBE_CONNECTIONS
const CHECKS = 450;
const PER_TICK = 15;
const TICK_MS = 30;
/** Names that come and go, and the nginx pods (hosts) they may be found at. */
const CHURNING = ['pod-4', 'pod-5', 'pod-6'] as const;

type TokenClass = 'held' | 'missing' | 'partial';
/** What the peers that stay answer for each class: every pod holds `held`; none `missing`; all but pod-1 `partial`. */
const VERDICT: Record<TokenClass, string> = { held: 'Synced', missing: 'NotSynced', partial: 'Partialy' };
const outcomeOf = (cls: TokenClass, name: string): string => (cls === 'held' || (cls === 'partial' && name !== 'pod-1') ? 'synced' : 'missing');

interface Published {
  readonly at: number;
  /** name → host */
  readonly peers: ReadonlyMap<string, string>;
}

let nginx: NginxPeers;
let sidecar: RunningSidecar;

t.before(async () => {
  const missing = nginxMissing();
  if (missing !== undefined) throw new Error(missing);
  // pod-0 is the origin; pods 1–3 the stable peers; the hosts of pods 4–8 are where churning names live.
  nginx = await startNginxPeers(9, '127.0.41.', 10);
  sidecar = await startSidecar({
    SYNCER_PEERS: nginx.pods.slice(0, 7).map((p) => `${p.name}=${p.host}:${nginx.probePort}`).join(','),
    SYNCER_SYNCED_TTL_MS: '0',
    // This process is the sidecar and the load: a probe timeout well above the event-loop stalls a
    // loaded two-core machine gives it keeps "timeout" about peers, not about this process's CPU.
    SYNCER_PROBE_TIMEOUT_MS: '600',
    SYNCER_HARD_TIMEOUT_MS: '2500',
    // Every check is admitted: what is measured is churn, not the admission bound.
    SYNCER_MAX_IN_FLIGHT: String(CHECKS),
  });
});
t.teardown(async () => {
  await sidecar?.stop();
  await nginx?.stop();
});

/** The next peer set, turn by turn (churnTurn): a replaced name moves to a spare host. */
function churner(initial: ReadonlyMap<string, string>, spareHosts: readonly string[]): (turn: number) => Map<string, string> {
  const current = new Map(initial);
  const spare = (): string | undefined => spareHosts.find((h) => ![...current.values()].includes(h));
  return (turn) => {
    const { slot, action } = churnTurn(turn, CHURNING.length);
    const name = CHURNING[slot]!;
    switch (action) {
      case 'remove':
        current.delete(name);
        break;
      case 'addBack':
        if (!current.has(name)) current.set(name, spare()!);
        break;
      case 'replace': {
        const next = spare();
        if (next !== undefined) current.set(name, next);
        break;
      }
    }
    return new Map(current);
  };
}

const toPeers = (peers: ReadonlyMap<string, string>, port: number): Peer[] => [...peers].map(([name, host]) => ({ name, host, port }));

t.test(`${CHECKS} checks, hundreds in flight, while the peer set changes every ${TICK_MS} ms`, async (t) => {
  const tokens = new Map<string, TokenClass>();
  for (let i = 0; i < CHECKS; i++) tokens.set(`churn-${process.pid}-${i}`, (['held', 'missing', 'partial'] as const)[i % 3]!);
  const byClass = (...classes: TokenClass[]): string[] => [...tokens].filter(([, c]) => classes.includes(c)).map(([tok]) => tok);
  await Promise.all(nginx.pods.map((p) => writeTokens(p.apiUrl, p.name === 'pod-1' ? byClass('held') : byClass('held', 'partial'))));

  const port = nginx.probePort;
  const initial = new Map(sidecar.app.store.current()!.peers.map((p) => [p.name, p.host]));
  const history: Published[] = [{ at: performance.now(), peers: initial }];
  const next = churner(initial, nginx.pods.slice(4).map((p) => p.host));
  let inFlight = 0;
  let maxInFlight = 0;
  const replies: Array<Promise<{ token: string; sentAt: number; reply: CheckReply; answeredAt: number }>> = [];
  const entries = [...tokens.keys()];
  for (let tick = 0; tick * PER_TICK < CHECKS; tick++) {
    for (const token of entries.slice(tick * PER_TICK, (tick + 1) * PER_TICK)) {
      const sentAt = performance.now();
      inFlight++;
      replies.push(
        sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token }).then((reply) => {
          maxInFlight = Math.max(maxInFlight, inFlight--);
          return { token, sentAt, reply, answeredAt: performance.now() };
        }),
      );
    }
    const peers = next(tick);
    sidecar.app.store.publish(toPeers(peers, port));
    history.push({ at: performance.now(), peers });
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }
  const results = await Promise.all(replies);
  t.comment(`${results.length} checks, at most ${maxInFlight} in flight at once, ${history.length - 1} peer-set changes`);
  t.ok(maxInFlight >= 200, `hundreds of checks in flight at once (${maxInFlight})`);

  const wrong: string[] = [];
  const departedSeen = { count: 0 };
  for (const { token, sentAt, reply, answeredAt } of results) {
    const cls = tokens.get(token)!;
    // The sets this check may have started with or seen change: the one current when it was sent, and every later one before its answer.
    const firstIdx = history.findLastIndex((h) => h.at <= sentAt);
    const sets = history.slice(firstIdx, history.findLastIndex((h) => h.at <= answeredAt) + 1).map((h) => h.peers);
    const everywhere = [...sets[0]!].filter(([name, host]) => sets.every((s) => s.get(name) === host)).map(([name]) => name);
    const ever = new Set(sets.flatMap((s) => [...s.keys()]));
    const reported = new Map((reply.body.peers ?? []).map((p) => [p.name, p.outcome]));
    const why: string[] = [];
    if (reply.status !== 200 || reply.tokenStatus !== VERDICT[cls]) why.push(`${reply.status} ${reply.tokenStatus}, not ${VERDICT[cls]}`);
    for (const name of everywhere.filter((n) => n !== 'pod-0')) {
      if (reported.get(name) !== outcomeOf(cls, name)) why.push(`${name} (a peer throughout) is ${reported.get(name) ?? 'not reported'}`);
    }
    for (const [name, outcome] of reported) {
      if (!ever.has(name)) why.push(`${name} was in no set of its time`);
      else if (outcome === 'departed') departedSeen.count++;
      else if (outcome !== outcomeOf(cls, name)) why.push(`${name} is ${outcome}`);
      if (outcome === 'departed' && everywhere.includes(name)) why.push(`${name} departed though it stayed`);
    }
    if (why.length > 0) wrong.push(`${cls} ${token} (${reply.body.durationMs} ms): ${why.join('; ')} — ${JSON.stringify(reply.body.peers)}`);
  }
  t.same(wrong.slice(0, 10), [], `every verdict is explained by the peer sets of its time (${wrong.length} not)`);
  t.ok(departedSeen.count > 0, `peers left during checks and were reported departed (${departedSeen.count} times)`);

  // The departed peers' pools are closed: only the final set's peers keep connections, within the cap.
  const final = history[history.length - 1]!.peers;
  const finalHosts = new Set([...final].filter(([name]) => name !== 'pod-0').map(([, host]) => host));
  const foreign = (): string[] => connectionsOf(process.pid, port).map((c) => c.remote).filter((h) => !finalHosts.has(h));
  await waitFor(() => foreign().length === 0, 'connections to peers no longer in the set to close', { context: () => `still open to ${[...new Set(foreign())].join(', ')}` });
  const perHost = new Map<string, number>();
  for (const c of connectionsOf(process.pid, port)) perHost.set(c.remote, (perHost.get(c.remote) ?? 0) + 1);
  t.ok([...perHost.values()].every((n) => n <= CAP), `connections per peer within the cap: ${JSON.stringify([...perHost])}`);

  const after = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': byClass('held')[0]! });
  t.same(
    [after.tokenStatus, (after.body.peers ?? []).map((p) => `${p.name}:${p.outcome}`).sort()],
    ['Synced', [...final.keys()].filter((n) => n !== 'pod-0').map((n) => `${n}:synced`).sort()],
    'a check after the churn probes exactly the final set',
  );
});
