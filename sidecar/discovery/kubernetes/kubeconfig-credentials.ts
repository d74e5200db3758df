// Credentials from a kubeconfig (the KUBECONFIG files or ~/.kube/config, as api-credentials.ts picks): CA,
// client certificates, bearer tokens, exec and auth-provider plugins, proxies — everything the
// library handles and this project does not re-implement. The only module that imports
// @kubernetes/client-node at run time; api-credentials.ts imports it only outside a pod.
import { KubeConfig } from '@kubernetes/client-node';
import type { ApiCredentials } from './credentials.js';

/** `kc` as the API client's credentials; throws when it names no cluster. */
export function kubeconfigCredentials(kc: KubeConfig): ApiCredentials {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('the kubeconfig has no current cluster');
  return {
    server: cluster.server.replace(/\/+$/, ''),
    contextNamespace: kc.getContextObject(kc.getCurrentContext())?.namespace,
    source: credentialSource(kc),
    // Re-applied per request: exec plugins and token files refresh their credentials here.
    authorize: (options) => kc.applyToHTTPSOptions(options),
  };
}

/** The kubeconfig user, and its exec plugin's command when it has one (what may hang or fail). */
function credentialSource(kc: KubeConfig): string {
  const user = kc.getCurrentUser();
  const command: unknown = (user?.exec as { command?: unknown } | undefined)?.command;
  return `the kubeconfig's user ${user?.name ?? '?'}${typeof command === 'string' ? `: its exec plugin ${command}` : ''}`;
}

/** `files` merged as KUBECONFIG's list is (the first one's context wins); none: the library's default. */
export function loadKubeconfig(files: readonly string[]): KubeConfig {
  const kc = new KubeConfig();
  const [first, ...rest] = files;
  if (first === undefined) {
    kc.loadFromDefault();
    return kc;
  }
  kc.loadFromFile(first);
  for (const file of rest) {
    const more = new KubeConfig();
    more.loadFromFile(file);
    kc.mergeConfig(more);
  }
  return kc;
}
