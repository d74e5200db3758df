// What talking to the API server needs, whoever provides it: the pod's service account
// (api-credentials.ts) or a kubeconfig (kubeconfig-credentials.ts). Types only.
import type https from 'node:https';

export interface ApiCredentials {
  /** The API server's base URL, without a trailing slash. */
  readonly server: string;
  /** The namespace of the kubeconfig's current context (what kubectl would use); undefined in a pod. */
  readonly contextNamespace: string | undefined;
  /** Where the credentials come from, in words an operator can act on (a failing plugin is named). */
  readonly source: string;
  /** Adds the TLS trust, the client identity and the Authorization header of one request to `options`. */
  authorize(options: https.RequestOptions): Promise<void>;
}
