// Which credentials the sidecar talks to the API server with, and that they work over real TLS:
// in a pod, the service account as client-go's InClusterConfig reads it (the CA trusted, the
// token read again for every request, so a rotated projected token is used at once); a
// kubeconfig first when there is one, in KubeConfig.loadFromDefault's order.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type RequestOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadApiCredentials } from '../sidecar/discovery/kubernetes/api-credentials.js';
import { createKubeHttp, KubeApiError } from '../sidecar/discovery/kubernetes/kube-http.js';
import { closeServer } from './support/listen.js';
import { issueCert, makeCa } from './support/tls-certs.js';

const dir = mkdtempSync(join(tmpdir(), 'apigw-credentials-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const home = join(dir, 'home'); // no ~/.kube/config here
mkdirSync(home);

/** A service-account directory as the kubelet mounts it: token, ca.crt, namespace. */
function serviceAccount(name: string, caPem: string, token: string): string {
  const sa = join(dir, name);
  mkdirSync(sa);
  writeFileSync(join(sa, 'ca.crt'), caPem);
  writeFileSync(join(sa, 'token'), token);
  writeFileSync(join(sa, 'namespace'), 'apigw');
  return sa;
}

/** An API server stand-in over TLS with a certificate for "localhost", recording each request's Authorization. */
async function tlsApi(certDir: string): Promise<{ port: number; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = createServer({ cert: readFileSync(join(certDir, 'tls.crt')), key: readFileSync(join(certDir, 'tls.key')) }, (req, res) => {
    seen.push(req.headers.authorization ?? '(none)');
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"kind":"PodList","items":[]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, seen, close: () => closeServer(server) };
}

const signal = new AbortController().signal;

t.test('in a pod: the API server at KUBERNETES_SERVICE_HOST:PORT over TLS, trusted through the mounted CA, the token read for every request', async (t) => {
  const ca = await makeCa(join(dir, 'ca'), 'cluster-ca');
  const api = await tlsApi(await issueCert(ca, join(dir, 'api'), ['localhost']));
  t.teardown(() => api.close());
  const sa = serviceAccount('sa', readFileSync(ca.crt, 'utf8'), 'first-token\n');
  const creds = await loadApiCredentials({ KUBERNETES_SERVICE_HOST: 'localhost', KUBERNETES_SERVICE_PORT: String(api.port), HOME: home }, sa);
  t.equal(creds.server, `https://localhost:${api.port}`);
  t.equal(creds.contextNamespace, undefined, 'the namespace comes from POD_NAMESPACE or the mounted file, not from here');
  const http = createKubeHttp(creds);
  t.same(await http.getJson('/api/v1/namespaces/apigw/pods', {}, signal), { kind: 'PodList', items: [] });
  // The kubelet rotates a projected token in place: the next request carries the new one.
  writeFileSync(join(sa, 'token'), 'second-token');
  await http.getJson('/api/v1/namespaces/apigw/pods', {}, signal);
  t.same(api.seen, ['Bearer first-token', 'Bearer second-token']);
});

t.test('in a pod: a server whose certificate the mounted CA did not sign is refused', async (t) => {
  const other = await makeCa(join(dir, 'other-ca'), 'another-ca');
  const api = await tlsApi(await issueCert(other, join(dir, 'other-api'), ['localhost']));
  t.teardown(() => api.close());
  const ca = await makeCa(join(dir, 'ca2'), 'cluster-ca');
  const sa = serviceAccount('sa2', readFileSync(ca.crt, 'utf8'), 'token');
  const http = createKubeHttp(await loadApiCredentials({ KUBERNETES_SERVICE_HOST: 'localhost', KUBERNETES_SERVICE_PORT: String(api.port), HOME: home }, sa));
  const err = await http.getJson('/api/v1/namespaces/apigw/pods', {}, signal).catch((e: unknown) => e);
  t.ok(err instanceof KubeApiError && err.status === undefined, 'a transport failure, no answer');
  t.match((err as KubeApiError).reason, /CERT|VERIFY|SIGNATURE/, `verification failed (${(err as KubeApiError).reason})`);
  t.same(api.seen, [], 'the token never reached it');
});

t.test('in a pod: an IPv6 service host is bracketed in the URL', async (t) => {
  const sa = serviceAccount('sa6', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 'token');
  const creds = await loadApiCredentials({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443', HOME: home }, sa);
  t.equal(creds.server, 'https://[fd00::1]:443');
});

/** A kubeconfig file naming `server`, with `namespace` in its current context. */
function kubeconfig(path: string, server: string, namespace: string): string {
  mkdirSync(join(path, '..'), { recursive: true });
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'u', user: { token: 'from-kubeconfig' } }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u', namespace } }],
    'current-context': 'ctx',
  };
  writeFileSync(path, JSON.stringify(config));
  return path;
}

t.test('a kubeconfig comes first, as in KubeConfig.loadFromDefault: KUBECONFIG, then ~/.kube/config, then the pod', async (t) => {
  const sa = serviceAccount('sa-k', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 'token');
  const inPod = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
  const file = kubeconfig(join(dir, 'explicit', 'config'), 'https://127.0.0.1:6443/', 'from-env');
  const fromEnv = await loadApiCredentials({ ...inPod, KUBECONFIG: file, HOME: home }, sa);
  t.same([fromEnv.server, fromEnv.contextNamespace], ['https://127.0.0.1:6443', 'from-env'], 'KUBECONFIG (trailing slash dropped)');
  const userHome = join(dir, 'user-home');
  kubeconfig(join(userHome, '.kube', 'config'), 'https://127.0.0.1:7443', 'from-home');
  const fromHome = await loadApiCredentials({ ...inPod, HOME: userHome }, sa);
  t.same([fromHome.server, fromHome.contextNamespace], ['https://127.0.0.1:7443', 'from-home'], '~/.kube/config');
  const options: RequestOptions = { headers: {} };
  await fromHome.authorize(options);
  t.equal((options.headers as Record<string, unknown>)['Authorization'], 'Bearer from-kubeconfig', "the kubeconfig's user authenticates");
  t.equal((await loadApiCredentials({ ...inPod, HOME: home }, sa)).server, 'https://10.0.0.1:443', 'else the pod');
});

t.test('no kubeconfig and no service-account token: the library\'s own default, not a half-configured pod', async (t) => {
  const empty = join(dir, 'no-sa');
  mkdirSync(empty);
  const creds = await loadApiCredentials({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', HOME: home }, empty);
  t.equal(creds.server, 'http://localhost:8080');
});
