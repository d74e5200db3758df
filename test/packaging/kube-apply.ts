// Server-side apply of rendered manifests, exactly as rendered, with fieldValidation=Strict:
// the API server rejects unknown or duplicate fields instead of dropping them.
// Why not KubernetesObjectApi: client-node 1.x re-serializes known kinds through its model
// types, which silently drops unknown fields before they reach the server, defeating the check.
import { request } from 'node:https';
import type { RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from './helm.js';

interface ApiResource {
  readonly name: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export interface KubeResponse {
  readonly status: number;
  readonly body: string;
}

export class KubeClient {
  private readonly resources = new Map<string, Promise<readonly ApiResource[]>>();

  constructor(private readonly kc: KubeConfig) {}

  private get server(): URL {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = new URL(cluster.server);
    // Tests only ever talk to the local control plane.
    if (!url.hostname.startsWith('127.')) throw new Error(`refusing non-loopback API server ${cluster.server}`);
    return url;
  }

  async send(method: string, path: string, body?: string, contentType = 'application/json'): Promise<KubeResponse> {
    const url = new URL(path, this.server);
    const opts: RequestOptions = { method, headers: { Accept: 'application/json', ...(body !== undefined ? { 'Content-Type': contentType } : {}) }, timeout: 15_000 };
    await this.kc.applyToHTTPSOptions(opts);
    return new Promise((resolve, reject) => {
      const req = request(url, opts, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${path}`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  async getJson<T>(path: string): Promise<T> {
    const r = await this.send('GET', path);
    if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status}: ${r.body.slice(0, 500)}`);
    return JSON.parse(r.body) as T;
  }

  /** Discovery: which resource (plural, namespaced) serves a kind in an apiVersion. */
  private async resource(apiVersion: string, kind: string): Promise<ApiResource> {
    let list = this.resources.get(apiVersion);
    if (list === undefined) {
      const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      list = this.getJson<{ resources: ApiResource[] }>(base).then((r) => r.resources.filter((x) => !x.name.includes('/')));
      this.resources.set(apiVersion, list);
    }
    const found = (await list).find((r) => r.kind === kind);
    if (!found) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
    return found;
  }

  async objectPath(obj: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<string> {
    const r = await this.resource(obj.apiVersion, obj.kind);
    const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
    const ns = obj.metadata.namespace;
    if (r.namespaced && !ns) throw new Error(`${obj.kind}/${obj.metadata.name} has no namespace`);
    return `${base}${r.namespaced ? `/namespaces/${encodeURIComponent(ns ?? '')}` : ''}/${r.name}/${encodeURIComponent(obj.metadata.name)}`;
  }

  /** Server-side apply; throws with the server's message (e.g. strict validation's) on failure. */
  async apply(obj: KubeObject, fieldManager = 'apigw-syncer-tests'): Promise<KubeObject> {
    const path = `${await this.objectPath(obj)}?fieldManager=${fieldManager}&fieldValidation=Strict&force=true`;
    const r = await this.send('PATCH', path, JSON.stringify(obj), 'application/apply-patch+yaml');
    if (r.status !== 200 && r.status !== 201) {
      throw new Error(`apply ${obj.kind}/${obj.metadata.name}: HTTP ${r.status}: ${errorMessage(r.body)}`);
    }
    return JSON.parse(r.body) as KubeObject;
  }

  async list<T>(apiVersion: string, kind: string, namespace: string, labelSelector?: string): Promise<T[]> {
    const path = await this.objectPath({ apiVersion, kind, metadata: { name: '', namespace } });
    const q = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    return (await this.getJson<{ items: T[] }>(`${path.replace(/\/$/, '')}${q}`)).items;
  }
}

/** The "message" of a Status body, else the raw text. */
export function errorMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status.message === 'string') return status.message;
  } catch {
    // not JSON: fall through to the raw text
  }
  return body.slice(0, 500);
}
