// Where the API server is and how to authenticate to it. In a pod (the sidecar's case) this is
// read here from the service account, as client-go's rest.InClusterConfig reads it; outside a
// cluster (the `peers` command on an operator's machine, the tests) the kubeconfig is loaded by
// @kubernetes/client-node, imported only then: its KubeConfig imports the library's whole
// generated API, which a pod never needs.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { isIPv6 } from 'node:net';
import { delimiter, join } from 'node:path';
import type { ApiCredentials } from './credentials.js';

/** Where the kubelet mounts the pod's service-account token, CA and namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The service account of this pod: the API server at KUBERNETES_SERVICE_HOST:PORT over TLS,
 * trusted through the mounted CA. The token is read again for every request (a projected token
 * rotates in place) and kept only while that request is written.
 */
export async function inClusterCredentials(host: string, port: string, dir = SERVICE_ACCOUNT_DIR): Promise<ApiCredentials> {
  const agent = new https.Agent({ keepAlive: true, ca: await readFile(join(dir, 'ca.crt')) });
  return {
    server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    contextNamespace: undefined,
    source: `the service account token in ${dir}`,
    async authorize(options) {
      const token = (await readFile(join(dir, 'token'), 'utf8')).trim();
      options.agent = agent;
      options.headers = { ...options.headers, Authorization: `Bearer ${token}` };
    },
  };
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The credentials client-node's KubeConfig.loadFromDefault would pick, in its order: the files
 * of KUBECONFIG, else ~/.kube/config, else the pod's service account (when KUBERNETES_SERVICE_HOST
 * and _PORT are set, as client-go requires), else the library's own fallback. Rejects when the
 * files cannot be read; the caller retries.
 */
export async function loadApiCredentials(env: Env = process.env, dir = SERVICE_ACCOUNT_DIR): Promise<ApiCredentials> {
  const host = env['KUBERNETES_SERVICE_HOST'] ?? '';
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '';
  const files = (env['KUBECONFIG'] ?? '').split(delimiter).filter((f) => f !== '');
  const home = env['HOME'] === undefined ? undefined : join(env['HOME'], '.kube', 'config');
  if (files.length === 0 && home !== undefined && existsSync(home)) files.push(home);
  if (files.length === 0 && host !== '' && port !== '' && existsSync(join(dir, 'token'))) return inClusterCredentials(host, port, dir);
  const { kubeconfigCredentials, loadKubeconfig } = await import('./kubeconfig-credentials.js');
  return kubeconfigCredentials(loadKubeconfig(files));
}
