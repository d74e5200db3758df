// The image's runtime, reproduced without Docker: the Dockerfile's build stage (tsc with
// tsconfig.build.json: sidecar/ only) and deps stage (npm ci --omit=dev from the lockfile),
// laid out as the runtime stage copies them, then started exactly as its ENTRYPOINT/CMD say
// (parsed from the Dockerfile, so the two cannot drift), in a bare environment.
import t from 'tap';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { globalArgs, imageArgv, parseStages, resolvedBases, runtimeSpec } from './packaging/dockerfile.js';
import { freePort, waitForHttp } from './support/net.js';
import { execTracked } from './support/processes.js';
import { repoRoot } from './support/repo-root.js';
import { runSidecarCommand, startSidecarProcess } from './support/sidecar-process.js';
import { deadline } from './support/wait.js';

const ROOT = repoRoot();
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const IP = '127.0.4.1';

t.test('Dockerfile: multi-stage, Node 24, non-root numeric user, exec-form ENTRYPOINT', async (t) => {
  const stages = parseStages(DOCKERFILE);
  t.same(
    stages.map((s) => s.name),
    ['build', 'deps', 'runtime'],
  );
  t.same(globalArgs(DOCKERFILE), { NODE_IMAGE: 'docker.io/library/node:24-alpine', NODE_DIGEST: '' }, 'Node 24 LTS base, named in full; no digest by default');
  t.same(resolvedBases(DOCKERFILE), Array(3).fill('docker.io/library/node:24-alpine'), 'every stage on the same base: the tag, for local builds');
  const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
  t.same(
    resolvedBases(DOCKERFILE, { NODE_DIGEST: digest }),
    Array(3).fill(`docker.io/library/node:24-alpine@${digest}`),
    'a release pins every stage by digest with --build-arg NODE_DIGEST',
  );
  const labels = (stages.at(-1)?.instructions ?? []).filter((i) => i.keyword === 'LABEL').map((i) => i.args).join(' ');
  t.match(labels, /org\.opencontainers\.image\.base\.name="\$\{NODE_IMAGE\}"/, 'the image records its base');
  t.match(labels, /org\.opencontainers\.image\.base\.digest="\$\{NODE_DIGEST\}"/, 'and the digest it was pinned to');
  const runs = (name: string): string[] => (stages.find((s) => s.name === name)?.instructions ?? []).filter((i) => i.keyword === 'RUN').map((i) => i.args);
  t.ok(
    runs('build').some((r) => /npm ci\b/.test(r) && !r.includes('--omit=dev')),
    'build stage installs dev dependencies',
  );
  t.ok(
    runs('build').some((r) => r.includes('tsc -p tsconfig.build.json')),
    'build stage compiles with tsconfig.build.json',
  );
  t.ok(
    runs('deps').some((r) => /npm ci\b.*--omit=dev/.test(r)),
    'deps stage installs production dependencies only',
  );
  const spec = runtimeSpec(DOCKERFILE);
  t.same(spec.entrypoint, ['node', '--max-semi-space-size=4', 'dist/sidecar/main.js'], 'exec form: node is PID 1 and gets SIGTERM; a small young generation keeps burst memory down');
  t.match(spec.user ?? '', /^[1-9][0-9]*:[0-9]+$/, 'numeric non-root UID:GID, so runAsNonRoot can be verified');
  t.equal(spec.workdir, '/app');
  const copies = (stages.at(-1)?.instructions ?? []).filter((i) => i.keyword === 'COPY').map((i) => i.args);
  t.same(
    copies,
    ['package.json ./', '--from=deps /app/node_modules ./node_modules', '--from=build /src/dist/sidecar ./dist/sidecar'],
    'the runtime holds package.json, production node_modules and dist/sidecar, nothing else',
  );
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

t.test('runtime stage reproduced: production install, start as ENTRYPOINT, /healthz, /readyz, SIGTERM → 0', async (t) => {
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

  // Build stage: the repo's sidecar sources with tsconfig.build.json, into a separate outDir.
  const build = join(dir, 'build');
  await timed('tsc -p tsconfig.build.json', () =>
    execTracked(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(build, 'dist')], { cwd: ROOT }),
  );
  t.ok(existsSync(join(build, 'dist', 'sidecar', 'main.js')), 'build stage output: dist/sidecar/main.js');
  t.notOk(existsSync(join(build, 'dist', 'test')), 'tsconfig.build.json compiles no tests');

  // Deps stage + runtime stage layout.
  const app = join(dir, 'app');
  mkdirSync(app);
  copyFileSync(join(ROOT, 'package.json'), join(app, 'package.json'));
  copyFileSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
  await timed('npm ci --omit=dev', () =>
    execTracked('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: app,
      env: { ...process.env, npm_config_loglevel: 'error' },
    }),
  );
  rmSync(join(app, 'package-lock.json')); // the runtime stage copies only package.json
  cpSync(join(build, 'dist', 'sidecar'), join(app, 'dist', 'sidecar'), { recursive: true });
  for (const dev of ['tap', 'typescript', 'pino-pretty']) t.notOk(existsSync(join(app, 'node_modules', dev)), `devDependency ${dev} absent`);
  for (const dep of ['pino', 'prom-client', 'undici', '@kubernetes/client-node']) t.ok(existsSync(join(app, 'node_modules', dep)), `dependency ${dep} present`);

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
  t.match(listening?.['node'], /^v24\./, `runs on the image's Node 24 LTS (${String(listening?.['node'])})`);
  await waitForHttp(`http://${IP}:${opsPort}/readyz`, { timeoutMs: 20_000, intervalMs: 50, context: output });
  t.pass('/readyz 200');
  t.match(await (await fetch(`http://${IP}:${opsPort}/metrics`)).text(), /syncer_peers 1/, 'metrics: one static peer');
  const served = (await (await fetch(`http://${IP}:${opsPort}/openapi.json`)).json()) as { openapi?: string };
  t.equal(served.openapi, '3.1.0', 'the image serves its OpenAPI document (built into dist/sidecar)');
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
