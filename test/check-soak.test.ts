// A bounded soak of the BUILT sidecar (issue 9): checks at a steady rate (open loop, not one
// after another) for SOAK_SECONDS (default 120; longer runs: SOAK_SECONDS=600), in kubernetes
// mode against a real control plane whose pods are real nginx peers, while the peer set churns
// every few seconds (a pod goes unready, comes back, or is deleted and replaced by a new pod at a
// new address) and tokens replicate with lag (written to the origin first, to the others after
// their own lag, to one peer never for some). Every check is answered, none past the deadline +
// 100 ms + the sidecar's own event-loop delay over the run (timing-floor.ts: on a machine whose
// CPU is taken, the deadline moves with it), each with the truth of its time; afterwards memory
// is flat and nothing piled up.
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { Agent } from 'undici';
import { churnTurn } from './support/churn.js';
import { startControlPlane } from './support/control-plane.js';
import { createDeployment, setupCluster, waitForReadyPods } from './support/discovery-cluster.js';
import { freePort } from './support/net.js';
import { nginxMissing, startNginxPod, writeTokens, removePodDir, type NginxPod } from './support/nginx.js';
import { activeResources, openFds, rssBytes } from './support/process-resources.js';
import { ReplicationSim, type Lag, type ReplicaWrite } from './support/replication-sim.js';
import { requirePart } from './support/required.js';
import { sendCheck, type CheckReply } from './support/sidecar-app.js';
import { MAIN_JS, startSidecarProcess } from './support/sidecar-process.js';
import { connectionsOf } from './support/tcp-sockets.js';
import { boundOf, sidecarLoopDelayMs } from './support/timing-floor.js';
import { waitFor } from './support/wait.js';

const SOAK_SECONDS = Number(process.env['SOAK_SECONDS'] ?? '120');
const RATE = 50; // checks per second, sent on schedule whatever the answers do
const CHURN_MS = 3_000;
const DEADLINE_MS = 1500; // the default SYNCER_HARD_TIMEOUT_MS
const ALLOWANCE_MS = 100; // what issue 9 allows past it
const CAP = 8; // the default SYNCER_PROBE_CONNECTIONS
const REPLICAS = 5; // this pod (the origin) and four peers: one stable, three churning
const MAX_LAG_MS = 300;
const NS = 'apigw';
const DEP = 'gw';
const MB = 1024 * 1024;

/**
 * held: every pod holds it from before it turns Ready (the replication of a new pod's first sync);
 * missing: nobody ever; lagged: the origin, then every other running pod after its lag;
 * partial: as lagged, but the stable peer never gets it.
 */
type TokenClass = 'held' | 'missing' | 'lagged' | 'partial';
const MIX: readonly TokenClass[] = ['held', 'missing', 'lagged', 'held', 'lagged', 'partial', 'held', 'missing', 'lagged', 'held'];
const HELD = Array.from({ length: 40 }, (_, i) => `soak-held-${i}`);

interface Sent {
  readonly cls: TokenClass;
  readonly token: string;
  readonly sentAt: number;
  /** Absolute write times per pod (performance.now), for lagged and partial tokens. */
  readonly writes?: Promise<ReadonlyMap<string, number | undefined>>;
  readonly answer: Promise<{ reply: CheckReply; answeredAt: number } | { error: string }>;
}

if (!Number.isFinite(SOAK_SECONDS) || SOAK_SECONDS < 30) throw new Error(`SOAK_SECONDS must be a number ≥ 30, got ${process.env['SOAK_SECONDS']}`);
// This file's budget, in place of tap's per-file timeout (package.json), so that a longer run
// is not cut short: setup and settling take well under a minute on top of the soak itself.
t.setTimeout(SOAK_SECONDS * 1000 + 150_000);

t.test(`soak: ${RATE} checks/s for ${SOAK_SECONDS} s with churn every ${CHURN_MS / 1000} s and replication lag`, async (t) => {
  requirePart(nginxMissing());
  const probePort = await freePort();
  const clientPort = await freePort();
  /** Every nginx started, by pod name, until stopped. */
  const nginx = new Map<string, NginxPod>();
  const starting = new Map<string, Promise<NginxPod>>();
  const stopNginx = async (name: string): Promise<void> => {
    const pod = nginx.get(name);
    nginx.delete(name);
    if (pod === undefined) return;
    await pod.stop();
    await removePodDir(pod);
  };
  t.teardown(() => Promise.all([...nginx.keys()].map(stopNginx)));
  const newPods: string[] = [];
  // The pod's nginx runs and holds every held token before the kubelet marks it Ready: with
  // zone_sync a new replica receives the zone's state when it joins.
  const beforeRunning = async ({ name, ip }: { name: string; ip: string }): Promise<void> => {
    let start = starting.get(name);
    if (start === undefined) {
      start = (async () => {
        const pod = await startNginxPod({ name, host: ip, port: clientPort, probePort, sidecarAddr: '127.0.0.1:1' });
        await writeTokens(pod.apiUrl, HELD);
        nginx.set(name, pod);
        newPods.push(name);
        return pod;
      })();
      starting.set(name, start);
      start.catch(() => starting.delete(name)); // retried by the kubelet's next reconcile
    }
    await start;
  };

  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const c = await setupCluster(cp, NS, '127.0.70.', { beforeRunning });
  t.teardown(() => c.kubelet.stop());
  await createDeployment(c, DEP, REPLICAS);
  const initial = (await waitForReadyPods(c, DEP, REPLICAS)).map((p) => p.metadata?.name ?? '').sort();
  const [own = '', stable = '', ...churning] = initial;

  const sidecar = await startSidecarProcess({
    KUBECONFIG: c.sidecarKubeconfig,
    SYNCER_DISCOVERY: 'kubernetes',
    POD_NAME: own,
    POD_NAMESPACE: NS,
    SYNCER_PROBE_PORT: String(probePort),
    // Every check probes: a remembered Synced would hide what the peers answer now.
    SYNCER_SYNCED_TTL_MS: '0',
    // Every check is admitted: on a loaded machine this process falls behind its schedule and
    // then sends the backlog at once, past the default bound of 128 waiting checks; the bound
    // has check-overload.test.ts, this file the churn, lag and memory.
    SYNCER_MAX_IN_FLIGHT: '2000',
    LOG_LEVEL: 'info',
  }, {
    // As the image runs it (its young generation) in the chart's pod (the heap cap derived from
    // the default 240Mi memory limit).
    argv: [process.execPath, '--max-old-space-size=120', '--max-semi-space-size=4', MAIN_JS],
  });
  t.teardown(() => sidecar.stop());
  const pid = sidecar.process.pid;
  const peerSets = (): Array<{ time: number; peers: string[] }> =>
    sidecar.lines.filter((l) => l['msg'] === 'peer set changed').map((l) => ({ time: Number(l['time']), peers: l['peers'] as string[] }));
  // The set names every ready pod, this one too: each check leaves out its origin.
  await waitFor(() => peerSets().some((s) => s.peers.length === REPLICAS), 'the first full peer set', {
    timeoutMs: 30_000,
    context: () => sidecar.output(),
  });

  const metrics = async (): Promise<{ resources: Map<string, number>; heapMB: string }> => {
    const text = await (await fetch(`${sidecar.opsUrl}/metrics`)).text();
    const heap = /^nodejs_heap_size_used_bytes (\d+)$/m.exec(text)?.[1];
    return { resources: activeResources(text), heapMB: (Number(heap) / MB).toFixed(1) };
  };
  // Descriptors before the metrics request: its connection is not among them either time.
  const fdsAtStart = openFds(pid);
  const atStart = await metrics();

  // The churn: one turn every CHURN_MS on a slot's current pod; a replaced pod's successor takes its slot.
  const slots = [...churning];
  const touched = new Set<string>();
  /** Pods deleted by the churn whose nginx still runs: stopped once the sidecar has dropped them for longer than a check lasts. */
  const retiring = new Set<string>();
  let turns = 0;
  const churnErrors: string[] = [];
  const churnTurnOnce = async (turn: number): Promise<void> => {
    const { slot, action } = churnTurn(turn, slots.length);
    const name = slots[slot]!;
    touched.add(name);
    if (action === 'remove') await c.kubelet.setReady(name, false);
    else if (action === 'addBack') await c.kubelet.setReady(name, true);
    else {
      const before = newPods.length;
      await c.kubelet.forceDelete(name);
      retiring.add(name);
      slots[slot] = await waitFor(() => newPods.slice(before)[0], `the replacement of ${name}`, { timeoutMs: 30_000, intervalMs: 20 });
    }
  };
  const retire = async (): Promise<void> => {
    const sets = peerSets();
    for (const name of retiring) {
      const droppedAt = sets.findLast((s) => !s.peers.includes(name))?.time;
      const last = sets[sets.length - 1];
      if (droppedAt === undefined || last?.peers.includes(name) || Date.now() - droppedAt < DEADLINE_MS + ALLOWANCE_MS) continue;
      retiring.delete(name);
      await stopNginx(name);
    }
  };

  const client = new Agent({ connections: 256 });
  const sent: Sent[] = [];
  const rss: Array<{ at: number; bytes: number }> = [];
  const began = performance.now();
  const endAt = began + SOAK_SECONDS * 1000;
  const send = (i: number): void => {
    const cls = MIX[i % MIX.length]!;
    const token = cls === 'held' ? HELD[i % HELD.length]! : `soak-${cls}-${process.pid}-${i}`;
    let writes: Sent['writes'];
    let issued: Promise<unknown> = Promise.resolve();
    if (cls === 'lagged' || cls === 'partial') {
      // Written to the pods running now; a pod that starts later never gets it (its truth: missing).
      const others = [...nginx.entries()].filter(([name]) => name !== own && !retiring.has(name));
      const sim = new ReplicationSim({ name: own, apiUrl: nginx.get(own)!.apiUrl }, others.map(([name, p]) => ({ name, apiUrl: p.apiUrl })));
      const lags: Record<string, Lag> = Object.fromEntries(others.map(([name], j) => [name, (i * 37 + j * 91) % MAX_LAG_MS]));
      if (cls === 'partial') lags[stable] = 'never';
      const issue = sim.issue(token, lags);
      issued = issue;
      writes = issue.then(async (x) => {
        const done: readonly ReplicaWrite[] = await x.replicated;
        const at = (w: ReplicaWrite): [string, number | undefined] => [w.name, w.atMs === undefined ? undefined : x.originAt + w.atMs];
        return new Map([[own, x.originAt], ...done.map(at)]);
      });
    }
    // The check goes out once the origin holds the token, as nginx asks after the issuer wrote it.
    let sentAt = performance.now();
    const answer = issued.then(async (): Promise<{ reply: CheckReply; answeredAt: number } | { error: string }> => {
      sentAt = performance.now();
      try {
        const reply = await sendCheck(sidecar.apiUrl, { 'X-Auth-Token': token, 'X-Nginx-Origin': own }, 'GET', '/v1/synced', { dispatcher: client });
        return { reply, answeredAt: performance.now() };
      } catch (err) {
        return { error: err instanceof Error ? `${err.message} ${(err as NodeJS.ErrnoException).code ?? ''}` : String(err) };
      }
    }, (err: unknown) => ({ error: `the origin write failed: ${String(err)}` }));
    sent.push({ cls, token, get sentAt() { return sentAt; }, writes, answer });
  };

  // The load: as many checks as the rate says by now, every 20 ms (a late timer is caught up).
  await new Promise<void>((resolve) => {
    let churning = false;
    const timer = setInterval(() => {
      const now = performance.now();
      const due = Math.min(Math.floor(((now - began) * RATE) / 1000), SOAK_SECONDS * RATE);
      while (sent.length < due) send(sent.length);
      if (rss.length === 0 || now - rss[rss.length - 1]!.at >= 1000) rss.push({ at: now - began, bytes: rssBytes(pid) });
      if (!churning && now - began >= (turns + 1) * CHURN_MS && now < endAt) {
        churning = true;
        void churnTurnOnce(turns++)
          .then(retire)
          .catch((err: unknown) => churnErrors.push(String(err)))
          .finally(() => (churning = false));
      }
      if (now >= endAt && sent.length >= SOAK_SECONDS * RATE) {
        clearInterval(timer);
        resolve();
      }
    }, 20);
  });
  const answers = await Promise.all(sent.map((s) => s.answer));
  const lateMs = await sidecarLoopDelayMs(sidecar.opsUrl);
  rss.push({ at: performance.now() - began, bytes: rssBytes(pid) });
  t.same(churnErrors, [], `the churn ran: ${turns} turns, ${newPods.length - REPLICAS} pods replaced`);

  // Every check answered, in time.
  const errors = answers.flatMap((a) => ('error' in a ? [a.error] : []));
  const replies = answers.flatMap((a) => ('reply' in a ? [a] : []));
  t.equal(replies.length, sent.length, `every check answered: ${sent.length} sent, ${replies.length} answered, ${errors.length} not (${[...new Set(errors)].slice(0, 3).join('; ')})`);
  const statuses = new Map<number, number>();
  for (const { reply } of replies) statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
  const refusals = [...new Set(replies.flatMap(({ reply }) => (reply.status === 200 ? [] : [`${reply.status} ${reply.body.error}`])))];
  t.same([...statuses], [[200, replies.length]], `every answer a verdict (${refusals.join('; ') || 'no refusal'})`);
  const durations = replies.map(({ reply }) => reply.body.durationMs ?? NaN);
  const maxDuration = Math.max(...durations);
  const deadline = boundOf(DEADLINE_MS, ALLOWANCE_MS, { lateMs, hopMs: 0 });
  t.same(durations.filter((d) => !(d <= deadline.ms)), [], `no verdict after the deadline + ${ALLOWANCE_MS} ms + the sidecar's loop delay (max ${maxDuration} ms; bound ${deadline.why})`);

  // Every verdict the truth of its time.
  const wrong: string[] = [];
  const tally = new Map<string, number>();
  let departed = 0;
  for (const [i, s] of sent.entries()) {
    const a = answers[i]!;
    if ('error' in a) continue;
    const { reply } = a;
    const key = `${s.cls}:${reply.tokenStatus}`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
    const writes = await s.writes;
    const why: string[] = [];
    if (reply.tokenStatus === 'Timeout') why.push('Timeout');
    if (s.cls === 'held' && reply.tokenStatus !== 'Synced') why.push(`${reply.tokenStatus}, not Synced`);
    if (s.cls === 'missing' && reply.tokenStatus !== 'NotSynced') why.push(`${reply.tokenStatus}, not NotSynced`);
    const peers = reply.body.peers ?? [];
    if (peers.length === 0) why.push('no peers');
    for (const p of peers) {
      if (p.outcome === 'departed') {
        departed++;
        if (!touched.has(p.name)) why.push(`${p.name} departed, though the churn never touched it`);
        continue;
      }
      // A write done early in the check's window is seen by a retry well before its deadline;
      // one never made leaves the peer missing. Writes in between may go either way.
      const writtenAt = s.cls === 'held' ? -Infinity : s.cls === 'missing' ? undefined : writes?.get(p.name);
      const truth = writtenAt === undefined ? 'missing' : writtenAt < s.sentAt + DEADLINE_MS / 2 ? 'synced' : undefined;
      if (truth !== undefined && p.outcome !== truth) why.push(`${p.name} ${p.outcome}, not ${truth} (${p.attempts} attempts, last ${p.lastStatus ?? p.lastError})`);
    }
    if (why.length > 0) wrong.push(`#${i} ${s.cls} ${reply.tokenStatus} in ${reply.body.durationMs} ms: ${why.join('; ')}`);
  }
  t.comment(`verdicts: ${JSON.stringify([...tally].sort())}; peers reported departed ${departed} times`);
  t.same(wrong.slice(0, 10), [], `every verdict true for the peers and writes of its time (${wrong.length} not)`);
  for (const cls of new Set(MIX)) t.ok([...tally.keys()].some((k) => k.startsWith(`${cls}:`)), `${cls} tokens were checked`);
  t.ok(departed > 0, 'peers left during checks (the churn reached checks in flight)');

  // Memory flat after warm-up: the first window after it against the last one.
  const warmUpS = Math.max(15, SOAK_SECONDS / 5);
  const windowS = Math.max(10, SOAK_SECONDS / 8);
  const avg = (from: number, to: number): number => {
    const xs = rss.filter((r) => r.at >= from * 1000 && r.at < to * 1000).map((r) => r.bytes);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const early = avg(warmUpS, warmUpS + windowS);
  const late = avg(SOAK_SECONDS - windowS, SOAK_SECONDS + 1);
  // V8 grows its heap in steps and collects when it likes, so a healthy process's RSS moves by a
  // few MB between windows (measured: ±2 MB at ~150 MB); 10% or 8 MB, whichever is larger,
  // passes that and fails a leak of ~4 KB per check over the default run (~15 MB over the
  // ~4,000 checks between the windows' middles). Longer runs catch smaller leaks.
  const allowed = Math.max(0.1 * early, 8 * MB);
  const peak = Math.max(...rss.map((r) => r.bytes));
  t.comment(`RSS: ${(rss[0]!.bytes / MB).toFixed(1)} MB at the start, ${(early / MB).toFixed(1)} MB after warm-up (${warmUpS}–${warmUpS + windowS} s), ${(late / MB).toFixed(1)} MB at the end (last ${windowS} s), ${(peak / MB).toFixed(1)} MB at most (sampled each second)`);
  t.ok(late - early <= allowed, `RSS flat after warm-up: ${((late - early) / MB).toFixed(1)} MB ≤ ${(allowed / MB).toFixed(1)} MB`);

  // Nothing piled up: once this client's connections are closed and the pools settle, the sidecar
  // holds what it held before the load plus its keep-alive connections to the peers of the final
  // set, at most the cap each (idle pooled connections stay open: that is what the pools are for).
  await client.close();
  const finalSet = peerSets().at(-1)!.peers.filter((n) => n !== own);
  const finalHosts = new Set(finalSet.map((n) => c.kubelet.ipOf(n)));
  const conns = (): ReturnType<typeof connectionsOf> => connectionsOf(pid, probePort);
  await waitFor(() => conns().every((x) => finalHosts.has(x.remote)), 'connections to peers no longer in the set to close', {
    context: () => `still open to ${[...new Set(conns().map((x) => x.remote))].filter((h) => !finalHosts.has(h)).join(', ')}`,
  });
  const perPeer = new Map<string, number>();
  for (const x of conns()) perPeer.set(x.remote, (perPeer.get(x.remote) ?? 0) + 1);
  t.ok([...perPeer.values()].every((n) => n <= CAP), `connections per peer within the cap: ${JSON.stringify([...perPeer])}`);
  const fdBound = fdsAtStart + CAP * finalSet.length;
  // Bounded wait for sockets still closing; the assertion below names the count either way.
  const fdsAtEnd = await waitFor(() => openFds(pid) <= fdBound, `the sidecar's descriptors back to ≤ ${fdBound}`)
    .catch(() => undefined)
    .then(() => openFds(pid));
  t.comment(`descriptors: ${fdsAtStart} at the start, ${fdsAtEnd} at the end; ${conns().length} connections to ${finalSet.length} peers`);
  t.ok(fdsAtEnd <= fdBound, `descriptors ≤ start + cap × peers (${fdsAtEnd} ≤ ${fdsAtStart} + ${CAP} × ${finalSet.length})`);
  const atEnd = await metrics();
  t.comment(`V8 heap used: ${atStart.heapMB} MB at the start, ${atEnd.heapMB} MB at the end`);
  const [before, after] = [atStart.resources, atEnd.resources];
  t.comment(`event loop resources: ${JSON.stringify([...before])} at the start, ${JSON.stringify([...after])} at the end`);
  t.equal(after.get('TCPServerWrap'), before.get('TCPServerWrap'), 'the same listeners');
  // A timer left behind per check, or per probe, would show as thousands here. The slack of 2 is
  // for discovery's own, which may be running at the instant of either scrape: a coalescing
  // window (SYNCER_COALESCE_MS) after a pod event, a retry pause of a watch.
  const timers = [before.get('Timeout') ?? 0, after.get('Timeout') ?? 0] as const;
  t.ok(timers[1] <= timers[0] + 2, `no timers left behind by checks (${timers[1]} ≤ ${timers[0]} + 2)`);
});
