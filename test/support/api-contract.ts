// Holds real answers of the sidecar against its OpenAPI document (sidecar/http/openapi.json):
// the status must be documented for that path, listener and method; documented headers present
// when required and valid when present; the body of the documented media type and valid against
// its schema (Ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses it; additionalProperties: false and
// full `required` lists in the document make a field added on either side fail). It also records
// which documented answers were seen, so a test can require that each one was.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { repoRoot } from './repo-root.js';

export type Listener = 'check' | 'ops';

export interface SeenAnswer {
  readonly listener: Listener;
  readonly method: string;
  /** The request path, query string excluded. */
  readonly path: string;
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

type Json = Record<string, unknown>;

export const OPENAPI_PATH = join(repoRoot(), 'sidecar', 'http', 'openapi.json');
const DOC_ID = 'openapi.json';
const OPS_PORT = ':9090';

// ajv-formats is CommonJS: imported from ESM, its module.exports is the plugin function itself.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

export class ApiContract {
  readonly doc: Json;
  private readonly ajv: Ajv2020;
  private readonly seen = new Set<string>();

  constructor(doc: Json = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as Json) {
    this.doc = doc;
    // Not strict: the document is OpenAPI, not a pure JSON Schema (paths, x- keys, …).
    this.ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addFormat('password', true);
    this.ajv.addSchema(doc, DOC_ID);
  }

  /** Every documented answer, as "listener METHOD path status". */
  documented(): Set<string> {
    const out = new Set<string>();
    for (const [path, item] of Object.entries(this.doc['paths'] as Record<string, Json>)) {
      for (const listener of listenersOf(item)) {
        for (const [method, op] of Object.entries(item)) {
          if (method === 'servers' || method === 'parameters') continue;
          for (const status of Object.keys(((op as Json)['responses'] as Json) ?? {})) out.add(`${listener} ${method.toUpperCase()} ${path} ${status}`);
        }
      }
    }
    return out;
  }

  /** The documented answers seen so far (see documented()). */
  covered(): Set<string> {
    return new Set(this.seen);
  }

  /** What is wrong with this answer by the document; empty when it conforms. */
  check(a: SeenAnswer): string[] {
    const where = `${a.listener} ${a.method} ${a.path} → ${a.status}`;
    const match = this.operationFor(a.listener, a.method, a.path);
    if (match === undefined) return [`${where}: no such operation in the document`];
    const response = (match.op['responses'] as Json | undefined)?.[String(a.status)];
    if (response === undefined) return [`${where}: status not documented for ${match.template}`];
    this.seen.add(`${a.listener} ${a.method} ${match.template} ${a.status}`);
    const r = this.deref(response as Json);
    const errors: string[] = [];
    for (const [name, spec] of Object.entries((r['headers'] as Json | undefined) ?? {})) {
      const h = this.deref(spec as Json);
      const value = a.headers[name.toLowerCase()];
      if (value === undefined) {
        if (h['required'] === true) errors.push(`${where}: header ${name} is required`);
        continue;
      }
      errors.push(...this.validate(h['schema'] as Json, value, `${where}: header ${name}`));
    }
    const content = r['content'] as Record<string, Json> | undefined;
    if (a.method === 'HEAD' || content === undefined) {
      if (a.body !== '') errors.push(`${where}: a body (${a.body.slice(0, 80)}) where the document describes none`);
      return errors;
    }
    const type = String(a.headers['content-type'] ?? '');
    const media = content[type] ?? content[type.split(';')[0]!.trim()];
    if (media === undefined) return [...errors, `${where}: content type "${type}" not documented (${Object.keys(content).join(', ')})`];
    if (!type.startsWith('application/json')) return errors;
    let body: unknown;
    try {
      body = JSON.parse(a.body);
    } catch {
      return [...errors, `${where}: body is not JSON: ${a.body.slice(0, 80)}`];
    }
    return [...errors, ...this.validate(media['schema'] as Json, body, `${where}: body`)];
  }

  private validate(schema: Json, value: unknown, what: string): string[] {
    const validate = this.ajv.compile({ $ref: `${DOC_ID}#`, ...this.rebase(schema) });
    if (validate(value)) return [];
    return (validate.errors ?? []).map((e) => `${what}${e.instancePath} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
  }

  /** A schema of the document whose local refs point into the added document. */
  private rebase(schema: Json): Json {
    return JSON.parse(JSON.stringify(schema).replace(/"\$ref":"#\//g, `"$ref":"${DOC_ID}#/`)) as Json;
  }

  /** Follows a `$ref: '#/…'` (once, as the document uses them) to what it names. */
  private deref(node: Json): Json {
    const ref = node['$ref'];
    if (typeof ref !== 'string') return node;
    let target: unknown = this.doc;
    for (const part of ref.replace(/^#\//, '').split('/')) target = (target as Json)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    return target as Json;
  }

  private operationFor(listener: Listener, method: string, path: string): { template: string; op: Json } | undefined {
    const paths = this.doc['paths'] as Record<string, Json>;
    // Concrete paths first, templates after: "/healthz" wins over "/{other}".
    const ordered = Object.keys(paths).sort((a, b) => Number(a.includes('{')) - Number(b.includes('{')));
    for (const template of ordered) {
      const item = paths[template]!;
      if (!listenersOf(item).includes(listener)) continue;
      const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
      if (!pattern.test(path)) continue;
      const op = item[method.toLowerCase()] as Json | undefined;
      if (op !== undefined) return { template, op };
    }
    return undefined;
  }
}

/** Which listeners serve a path: its own servers if it has them, else the document's (the check API). */
function listenersOf(item: Json): Listener[] {
  const servers = (item['servers'] as Array<{ url: string }> | undefined) ?? [{ url: 'http://127.0.0.1:8080' }];
  return [...new Set(servers.map((s): Listener => (s.url.includes(OPS_PORT) ? 'ops' : 'check')))];
}
