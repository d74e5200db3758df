// `apigw-syncer peers` in each mode, in-process: static and dns print their sets; kubernetes
// against an unreachable API fails within its deadline with the reason. (Against a real control
// plane it runs as the built program in discovery-e2e.test.ts.)
import { PassThrough } from 'node:stream';
import t from 'tap';
import { KubeConfig } from '@kubernetes/client-node';
import { kubeconfigCredentials } from '../sidecar/discovery/kubernetes/kubeconfig-credentials.js';
import { runPeersCommand } from '../sidecar/peers-command.js';
import { configFrom } from './support/discovery-harness.js';
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
