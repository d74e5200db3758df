// `apigw-syncer peers` in each mode, in-process: static and dns print their sets; kubernetes
// against an unreachable API fails within its deadline with the reason, and so does a kubeconfig
// whose credential plugin hangs (also as the built program, which must exit on time). (Against a
// real control plane it runs as the built program in discovery-e2e.test.ts.)
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { KubeConfig } from '@kubernetes/client-node';
import { createKubeHttp, KubeApiError } from '../sidecar/discovery/kubernetes/kube-http.js';
import { kubeconfigCredentials } from '../sidecar/discovery/kubernetes/kubeconfig-credentials.js';
import { runPeersCommand } from '../sidecar/peers-command.js';
import { configFrom } from './support/discovery-harness.js';
import { runSidecarCommand } from './support/sidecar-process.js';
import { boundOf, withLoopDelay } from './support/timing-floor.js';

const DEADLINE_MS = 1_500;
/** Past the deadline: stopping discovery (aborting its requests) and printing, besides the floors. */
const STOP_ALLOWANCE_MS = 2_500;

async function run(env: Record<string, string>, options: Parameters<typeof runPeersCommand>[2] = {}): Promise<{ code: number; out: string }> {
  const out = new PassThrough();
  let text = '';
  out.setEncoding('utf8').on('data', (c: string) => (text += c));
  const code = await runPeersCommand(configFrom({ LOG_LEVEL: 'silent', ...env }), out, options);
  return { code, out: text };
}

t.test('static: the configured peers', async (t) => {
  const r = await run({ SYNCER_DISCOVERY: 'static', SYNCER_PEERS: 'b=127.0.0.2:81,a=127.0.0.3:82' });
  t.equal(r.code, 0);
  t.match(r.out, /discovery: static/);
  t.match(r.out, /NAME\s+HOST\s+PORT\na\s+127\.0\.0\.3\s+82\nb\s+127\.0\.0\.2\s+81\n/);
  t.match(r.out, /2 peer\(s\)/);
});

t.test('dns: the resolved addresses minus this pod (localhost, from /etc/hosts)', async (t) => {
  const r = await run({ SYNCER_DISCOVERY: 'dns', SYNCER_DNS_NAME: 'localhost', POD_IP: '10.9.9.9', SYNCER_PROBE_PORT: '8088' });
  t.equal(r.code, 0);
  t.match(r.out, /discovery: dns \(localhost, own IP 10\.9\.9\.9 left out\)/);
  t.match(r.out, /127\.0\.0\.1\s+127\.0\.0\.1\s+8088/);
});

t.test('kubernetes: an unreachable API server fails clearly within the deadline', async (t) => {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u', token: 'x' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u', namespace: 'from-context' }],
    currentContext: 'ctx',
  });
  // The floor of this run: the command with nothing to wait for (static peers).
  let began = performance.now();
  await run({ SYNCER_DISCOVERY: 'static', SYNCER_PEERS: 'a=127.0.0.3:82' });
  const hopMs = performance.now() - began;
  began = performance.now();
  const { result: r, lateMs } = await withLoopDelay(() => run({ SYNCER_DISCOVERY: 'kubernetes', SYNCER_DEPLOYMENT: 'gw', POD_NAME: 'gw-1' }, { credentials: kubeconfigCredentials(kc), deadlineMs: DEADLINE_MS, env: {} }));
  const took = performance.now() - began;
  t.equal(r.code, 1);
  const bound = boundOf(DEADLINE_MS, STOP_ALLOWANCE_MS, { lateMs, hopMs });
  t.ok(took <= bound.ms, `bounded by the deadline (${took.toFixed(0)} ms; bound ${bound.why})`);
  t.match(r.out, /error: no peer set within 1\.5 s \(discovery: kubernetes, namespace from-context\)/, 'namespace from the kubeconfig context when POD_NAMESPACE is unset');
  t.match(r.out, /last problem: list deployments failed: .*ECONNREFUSED/);
});

/**
 * A kubeconfig whose user's credentials come from an exec plugin running `body` (sh), for an API
 * server that is never reached; the plugin's pids are killed at teardown.
 */
function execPluginKubeconfig(t: { teardown(fn: () => void): void }, body: string): { path: string; kc: KubeConfig; plugin: string } {
  const dir = mkdtempSync(join(tmpdir(), 'apigw-exec-'));
  const plugin = join(dir, 'credential-plugin');
  const pids = join(dir, 'pids');
  writeFileSync(plugin, `#!/bin/sh\necho $$ >> ${pids}\n${body}\n`);
  chmodSync(plugin, 0o755);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'u', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, interactiveMode: 'Never' } } }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u', namespace: 'ns' } }],
    'current-context': 'ctx',
  };
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, JSON.stringify(config));
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  t.teardown(() => {
    let started = '';
    try {
      started = readFileSync(pids, 'utf8');
    } catch {
      // never started
    }
    for (const pid of started.split('\n').filter((p) => p !== '')) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, kc, plugin };
}

/** `work`, or undefined if it has not settled after `ms` (a hang must fail the test, not stall it). */
async function within<T>(ms: number, work: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

t.test('kubernetes: a credential plugin that hangs is bounded by the deadline, and named', async (t) => {
  const { kc, plugin } = execPluginKubeconfig(t, 'exec sleep 1000000');
  let began = performance.now();
  await run({ SYNCER_DISCOVERY: 'static', SYNCER_PEERS: 'a=127.0.0.3:82' });
  const hopMs = performance.now() - began;
  began = performance.now();
  const env = { SYNCER_DISCOVERY: 'kubernetes', SYNCER_DEPLOYMENT: 'gw', POD_NAME: 'gw-1' };
  const { result: r, lateMs } = await withLoopDelay(() => within(60_000, run(env, { credentials: kubeconfigCredentials(kc), deadlineMs: DEADLINE_MS, env: {} })));
  const took = performance.now() - began;
  if (r === undefined) {
    t.fail('runPeersCommand had not returned a minute after its 1.5 s deadline');
    return;
  }
  t.equal(r.code, 1);
  const bound = boundOf(DEADLINE_MS, STOP_ALLOWANCE_MS, { lateMs, hopMs });
  t.ok(took <= bound.ms, `bounded by the deadline (${took.toFixed(0)} ms; bound ${bound.why})`);
  t.equal(r.out, `error: no credentials within 1.5 s (the kubeconfig's user u: its exec plugin ${plugin} did not finish)\n`);
});

t.test('a discovery request waiting for a hanging credential plugin ends with its own bound (a list deadline, a stop)', async (t) => {
  const { kc } = execPluginKubeconfig(t, 'exec sleep 1000000');
  const http = createKubeHttp(kubeconfigCredentials(kc));
  const err = await within(60_000, http.getJson('/api/v1/namespaces/ns/pods', {}, AbortSignal.timeout(300)).then(() => 'answered', (e: unknown) => e));
  t.ok(err instanceof KubeApiError, `rejected (${String(err)})`);
  t.match(err, { status: undefined, reason: 'Aborted', message: /\(waiting for the credentials\)$/ });
});

t.test('kubernetes: a credential plugin that fails is named with what it said', async (t) => {
  const { kc, plugin } = execPluginKubeconfig(t, 'echo "the login expired: run sso-login" >&2; exit 1');
  const r = await within(60_000, run({ SYNCER_DISCOVERY: 'kubernetes', SYNCER_DEPLOYMENT: 'gw', POD_NAME: 'gw-1' }, { credentials: kubeconfigCredentials(kc), deadlineMs: DEADLINE_MS, env: {} }));
  t.same(r, { code: 1, out: `error: no credentials (the kubeconfig's user u: its exec plugin ${plugin} failed: the login expired: run sso-login)\n` });
});

t.test('the built program: `peers` with a hanging credential plugin exits on time', async (t) => {
  const { path, plugin } = execPluginKubeconfig(t, 'exec sleep 1000000');
  // The built program's deadline is the default, 10 s; it must then exit, the plugin still running.
  const DEFAULT_DEADLINE_MS = 10_000;
  const began = performance.now();
  const r = await runSidecarCommand(['peers'], { KUBECONFIG: path, SYNCER_DISCOVERY: 'kubernetes', SYNCER_DEPLOYMENT: 'gw', POD_NAME: 'gw-1', HOME: tmpdir() }, { timeoutMs: 60_000 });
  const took = performance.now() - began;
  t.equal(r.exit.code, 1, `exit status 1 (${JSON.stringify(r.exit)})`);
  t.ok(took >= DEFAULT_DEADLINE_MS, `not before the deadline (${took.toFixed(0)} ms)`);
  // Starting node and loading the program, and exiting, on a loaded machine: a generous allowance.
  t.ok(took <= DEFAULT_DEADLINE_MS + 10_000, `exits on time (${took.toFixed(0)} ms), not when the plugin does`);
  t.equal(r.stdout, `error: no credentials within 10 s (the kubeconfig's user u: its exec plugin ${plugin} did not finish)\n`);
});
