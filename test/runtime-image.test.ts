// The image's runtime, reproduced without Docker: the Dockerfile's build stage (its last RUN:
// type-check sidecar/ with tsconfig.build.json, then the bundle), copied as the runtime stage
// copies it, then started exactly as its ENTRYPOINT/CMD say (parsed from the Dockerfile, so the
// two cannot drift), in a bare environment. And the runtime is one version everywhere: the
// image's base, the tests' production runtime, and the Node npm scripts (this suite) run on.
import t from 'tap';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { globalArgs, imageAppDir, imageArgv, parseStages, resolvedBases, runtimeSpec } from './packaging/dockerfile.js';
import { freePort, waitForHttp } from './support/net.js';
import { execTracked } from './support/processes.js';
import { repoRoot } from './support/repo-root.js';
import { runSidecarCommand, startSidecarProcess } from './support/sidecar-process.js';
import { nodeRuntimeVersion } from './support/tools.js';
import { deadline } from './support/wait.js';

const ROOT = repoRoot();
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const IP = '127.0.4.1';
/** `entry` and every bundle file it imports statically, transitively (import … from "./x.mjs"). */
function staticImports(dir: string, entry: string): string[] {
  const seen = [entry];
  for (let i = 0; i < seen.length; i++) {
    for (const m of readFileSync(join(dir, seen[i]!), 'utf8').matchAll(/^(?:import|export)\b[^;]*?\bfrom "\.\/([^"]+)";/gms)) {
      if (!seen.includes(m[1]!)) seen.push(m[1]!);
    }
  }
  return seen;
}

/** The build stage's RUN instructions, in order. */
const buildRuns = (): string[] => (parseStages(DOCKERFILE).find((s) => s.name === 'build')?.instructions ?? []).filter((i) => i.keyword === 'RUN').map((i) => i.args);

t.test('one Node runtime: the image\'s base, the tests\' production runtime, and the Node this suite runs on', async (t) => {
  const version = nodeRuntimeVersion();
  const major = version.split('.')[0];
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string>; engines: Record<string, string> };
  t.equal(pkg.devDependencies['node'], version, `package.json's devDependency "node" pins NODE_RUNTIME_VERSION (${version}): npm scripts run on it`);
  t.equal(globalArgs(DOCKERFILE)['NODE_IMAGE'], `docker.io/library/node:${major}-alpine`, `the image's base is the same major (node:${major}-alpine)`);
  t.equal(process.version, `v${version}`, 'this suite runs on it (npm test, npx tap: node_modules/.bin/node)');
  t.equal(pkg.engines['node'], `>=${major}`, 'engines states the line the suite proves');
});

t.test('Dockerfile: multi-stage, non-root numeric user, exec-form ENTRYPOINT, the bundle alone', async (t) => {
  const stages = parseStages(DOCKERFILE);
  t.same(
    stages.map((s) => s.name),
    ['build', 'runtime'],
  );
  const base = globalArgs(DOCKERFILE)['NODE_IMAGE'] ?? '';
  t.same(globalArgs(DOCKERFILE), { NODE_IMAGE: base, NODE_DIGEST: '' }, 'the base named in full; no digest by default');
  t.same(resolvedBases(DOCKERFILE), Array(2).fill(base), 'every stage on the same base: the tag, for local builds');
  const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
  t.same(
    resolvedBases(DOCKERFILE, { NODE_DIGEST: digest }),
    Array(2).fill(`${base}@${digest}`),
    'a release pins every stage by digest with --build-arg NODE_DIGEST',
  );
  const labels = (stages.at(-1)?.instructions ?? []).filter((i) => i.keyword === 'LABEL').map((i) => i.args).join(' ');
  t.match(labels, /org\.opencontainers\.image\.base\.name="\$\{NODE_IMAGE\}"/, 'the image records its base');
  t.match(labels, /org\.opencontainers\.image\.base\.digest="\$\{NODE_DIGEST\}"/, 'and the digest it was pinned to');
  const runs = buildRuns();
  t.ok(
    runs.some((r) => /npm ci\b/.test(r) && !r.includes('--omit=dev')),
    'build stage installs dev dependencies (the bundler)',
  );
  t.equal(runs.at(-1), 'npx tsc -p tsconfig.build.json && npm run bundle', 'build stage type-checks the sidecar, then bundles it');
  const spec = runtimeSpec(DOCKERFILE);
  t.same(spec.entrypoint, ['node', '--max-semi-space-size=4', 'apigw-syncer.mjs'], 'exec form: node is PID 1 and gets SIGTERM; a small young generation keeps burst memory down');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.equal(pkg.scripts['start'], [...spec.entrypoint, ...spec.cmd].map((a) => (a === 'apigw-syncer.mjs' ? 'dist/bundle/apigw-syncer.mjs' : a)).join(' '), 'npm start runs the program as the image does, V8 flags included');
  t.match(spec.user ?? '', /^[1-9][0-9]*:[0-9]+$/, 'numeric non-root UID:GID, so runAsNonRoot can be verified');
  t.equal(spec.workdir, '/app');
  const copies = (stages.at(-1)?.instructions ?? []).filter((i) => i.keyword === 'COPY').map((i) => i.args);
  t.same(copies, ['--from=build /src/dist/bundle ./'], 'the runtime holds the bundle, nothing else');
});

t.test('.dockerignore keeps the build context to what the Dockerfile copies', async (t) => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  t.equal(lines[0], '*', 'deny by default');
  for (const allowed of ['!package.json', '!package-lock.json', '!tsconfig.json', '!tsconfig.build.json', '!sidecar/']) t.ok(lines.includes(allowed), allowed);
  t.notOk(
    lines.some((l) => /^!(node_modules|dist|test)/.test(l)),
    'never node_modules, dist or tests',
  );
});

t.test('runtime stage reproduced: the bundle alone, started as ENTRYPOINT, /healthz, /readyz, SIGTERM → 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'apigw-runtime-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const timings: string[] = [];
  const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const start = Date.now();
    try {
      return await fn();
    } finally {
      timings.push(`${what} ${Date.now() - start} ms`);
    }
  };

  // Build stage: its last RUN, in this checkout (the bundle lands in dist/bundle, as npm run build puts it).
  const [lastRun = ''] = buildRuns().slice(-1);
  await timed(lastRun, () => execTracked('/bin/sh', ['-c', lastRun], { cwd: ROOT }));
  // Runtime stage: COPY --from=build /src/dist/bundle ./ (what the other tests run the ENTRYPOINT from).
  t.equal(imageAppDir(DOCKERFILE, ROOT), join(ROOT, 'dist', 'bundle'), "the image's WORKDIR holds dist/bundle");
  const app = join(dir, 'app');
  cpSync(imageAppDir(DOCKERFILE, ROOT), app, { recursive: true });
  const files = readdirSync(app).sort();
  t.ok(files.includes('apigw-syncer.mjs'), `the bundle's entry is there (${files.join(', ')})`);
  t.ok(files.every((f) => f.endsWith('.mjs')), 'only bundle files: no node_modules, no package.json, no source maps');
  // What starting loads: the entry and the chunks it imports statically. @kubernetes/client-node
  // (its KubeConfig imports the whole generated API) is only in the chunk a kubeconfig loads.
  const loadedAtStart = staticImports(app, 'apigw-syncer.mjs');
  const sourceAtStart = new Map(loadedAtStart.map((f) => [f, readFileSync(join(app, f), 'utf8')]));
  const startHolds = (module: RegExp): string[] => loadedAtStart.filter((f) => module.test(sourceAtStart.get(f)!));
  const library = /^\/\/ node_modules\/@kubernetes\/client-node\//m;
  t.same(startHolds(library), [], `no client-node code in what starts (${loadedAtStart.join(', ')})`);
  const lazy = files.filter((f) => !loadedAtStart.includes(f));
  t.ok(lazy.some((f) => f.startsWith('kubeconfig-credentials-') && library.test(readFileSync(join(app, f), 'utf8'))), `the kubeconfig chunk holds it (${lazy.join(', ')})`);
  // undici's index loads fetch, WebSocket, the cache and every dispatcher; the sidecar imports
  // only the modules it runs (Pool, Client, the request API): ~4 MB less resident when idle.
  const undiciIndex = /^\/\/ node_modules\/undici\/(index\.js|lib\/web\/websocket\/)/m;
  t.same(startHolds(undiciIndex), [], 'no undici index (fetch, WebSocket) in what starts');
  // V8 keeps each script's source for lazy compilation, one byte per character only when every
  // character fits in Latin-1: one arrow in a comment esbuild keeps doubles the entry's ~0.5 MB.
  for (const [f, source] of sourceAtStart) {
    const wide = [...source].filter((c) => c.codePointAt(0)! > 0xff);
    t.same([...new Set(wide)], [], `${f}: one-byte source (no character past U+00FF)`);
  }

  // A peer for static discovery: answers the probe path like a replica that has every token.
  const peer: Server = createServer((_req, res) => res.writeHead(200).end());
  const peerPort = await freePort(IP);
  await new Promise<void>((resolve) => peer.listen(peerPort, IP, resolve));
  t.teardown(() => new Promise<void>((resolve) => peer.close(() => resolve())));

  const image = runtimeSpec(DOCKERFILE);
  const [opsPort, apiPort] = [await freePort(IP), await freePort(IP)];
  // A container's environment: the image's ENV and what the pod sets, not this shell's.
  const env = {
    ...image.env,
    HOME: dir,
    POD_NAME: 'apigw-0',
    POD_NAMESPACE: 'apigw',
    SYNCER_DISCOVERY: 'static',
    SYNCER_PEERS: `apigw-1=${IP}:${peerPort}`,
    SYNCER_OPS_ADDR: `${IP}:${opsPort}`,
    SYNCER_LISTEN_ADDR: `${IP}:${apiPort}`,
  };
  const argv = imageArgv(image);
  const started = Date.now();
  // From the start, 20 s to listen and answer /healthz.
  const healthy = deadline(20_000);
  const proc = await startSidecarProcess(env, { argv, cwd: app, bareEnv: true, timeoutMs: healthy.remainingMs() });
  t.teardown(() => proc.stop('SIGTERM', 10_000));
  const output = (): string => `output:\n${proc.output()}`;
  await waitForHttp(`http://${IP}:${opsPort}/healthz`, { timeoutMs: healthy.remainingMs(), intervalMs: 50, context: output });
  timings.push(`start → /healthz 200 ${Date.now() - started} ms`);
  t.pass('/healthz 200');
  const listening = proc.lines.find((l) => l['msg'] === 'listening');
  t.equal(listening?.['node'], `v${nodeRuntimeVersion()}`, "runs on the image's Node");
  await waitForHttp(`http://${IP}:${opsPort}/readyz`, { timeoutMs: 20_000, intervalMs: 50, context: output });
  t.pass('/readyz 200');
  t.match(await (await fetch(`http://${IP}:${opsPort}/metrics`)).text(), /syncer_peers 1/, 'metrics: one static peer');
  const served = (await (await fetch(`http://${IP}:${opsPort}/openapi.json`)).json()) as { openapi?: string };
  t.equal(served.openapi, '3.1.0', 'the image serves its OpenAPI document (built into the bundle)');
  t.notMatch(proc.stderr(), /ExperimentalWarning/, 'no experimental warning on the image runtime');

  // The peers command, as the NOTES tell operators to run it inside the container.
  const peers = await runSidecarCommand(['peers'], env, { argv, cwd: app });
  const peersOutput = peers.stdout + peers.stderr;
  t.same(peers.exit, { code: 0, signal: null }, `peers command exits 0:\n${peersOutput}`);
  t.match(peersOutput, /apigw-1/, 'peers command lists the static peer');

  const stopping = Date.now();
  proc.child.kill('SIGTERM');
  const exit = await proc.process.exited;
  timings.push(`SIGTERM → exit ${Date.now() - stopping} ms`);
  t.same(exit, { code: 0, signal: null }, `SIGTERM → exit code 0:\n${proc.output()}`);
  t.comment(timings.join('; '));
});
