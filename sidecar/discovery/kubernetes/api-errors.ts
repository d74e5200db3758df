// Turns API failures into one operator-facing line each, logged at the level it deserves. A
// missing permission is a deployment mistake, not weather: it is logged at error level once per
// (verb, resource), naming the grant that fixes it. Transient failures are logged at warn when
// they start and at debug while they repeat (the caller, api-health.ts, knows which).
import type { Logger } from 'pino';
import type { KubeApiError } from './kube-http.js';

export type ApiVerb = 'get' | 'list' | 'watch';
export type ApiResource = 'pods' | 'replicasets' | 'deployments';

const GROUP: Readonly<Record<ApiResource, string>> = { pods: '', replicasets: 'apps/', deployments: 'apps/' };

export class ApiErrorReporter {
  private readonly forbiddenLogged = new Set<string>();
  private unauthorizedLogged = false;

  constructor(
    private readonly log: Logger,
    private readonly namespace: string,
  ) {}

  /** Logs (as above) and returns a one-line reason for PeerStore.reportFailure. */
  report(verb: ApiVerb, resource: ApiResource, err: KubeApiError, repeat: boolean): string {
    if (err.status === 403) {
      const line = `forbidden: cannot ${verb} ${GROUP[resource]}${resource} in namespace ${this.namespace} — grant get/list/watch on ${GROUP[resource]}${resource} (roles/)`;
      const cause = `${verb} ${resource}`;
      if (!this.forbiddenLogged.has(cause)) {
        this.forbiddenLogged.add(cause);
        this.log.error({ verb, resource, namespace: this.namespace, apiMessage: err.message }, line);
      }
      return line;
    }
    if (err.status === 401) {
      const line = `unauthorized: the API server rejected this sidecar's credentials (${verb} ${resource})`;
      if (!this.unauthorizedLogged) {
        this.unauthorizedLogged = true;
        this.log.error({ verb, resource, apiMessage: err.message }, line);
      }
      return line;
    }
    const line = `${verb} ${resource} failed: ${err.message}`;
    this.log[repeat ? 'debug' : 'warn']({ verb, resource, status: err.status, reason: err.reason }, line);
    return line;
  }

  /** The resource answers again after failing. */
  recovered(resource: ApiResource): void {
    this.log.info({ resource }, `${resource}: API server reachable again`);
  }
}
