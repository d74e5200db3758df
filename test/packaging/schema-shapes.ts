// Compares the Kubernetes shapes typed in the chart's values.schema.json with the API server's
// own OpenAPI v3 schemas, so the chart's typing (additionalProperties false, enums, required
// fields) cannot drift from what the API accepts: each property the chart types must exist in
// the API, with the same type, and enum values among the API's. The chart may narrow (fewer
// fields, const values: the restricted security contexts); it may not invent.
// Draft-07 JSON Schema on one side, OpenAPI v3 (refs wrapped in allOf) on the other: both are
// reduced to what they say about each value's type.

export interface JsonSchema {
  readonly $ref?: string;
  readonly allOf?: readonly JsonSchema[];
  readonly oneOf?: readonly JsonSchema[];
  readonly type?: string | readonly string[];
  readonly items?: JsonSchema;
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  readonly additionalProperties?: JsonSchema | boolean;
  readonly enum?: readonly unknown[];
  readonly const?: unknown;
  readonly format?: string;
  readonly 'x-kubernetes-int-or-string'?: boolean;
}

export type Definitions = Readonly<Record<string, JsonSchema>>;

/** Where the chart's schema types a Kubernetes shape (a JSON pointer), and the API schema it must fit. */
export const SHAPES: Readonly<Record<string, string>> = {
  '/definitions/containerSecurityContext': 'io.k8s.api.core.v1.SecurityContext',
  '/definitions/podSecurityContext': 'io.k8s.api.core.v1.PodSecurityContext',
  '/definitions/affinity': 'io.k8s.api.core.v1.Affinity',
  '/definitions/topologySpreadConstraint': 'io.k8s.api.core.v1.TopologySpreadConstraint',
  '/definitions/networkPolicyPeer': 'io.k8s.api.networking.v1.NetworkPolicyPeer',
  '/definitions/resources': 'io.k8s.api.core.v1.ResourceRequirements',
  '/definitions/probeTiming': 'io.k8s.api.core.v1.Probe',
  '/properties/strategy': 'io.k8s.api.apps.v1.DeploymentStrategy',
  '/properties/tolerations/items': 'io.k8s.api.core.v1.Toleration',
  '/properties/nginx/properties/extraVolumes/items': 'io.k8s.api.core.v1.Volume',
  '/properties/nginx/properties/extraVolumeMounts/items': 'io.k8s.api.core.v1.VolumeMount',
};

/** The schema at a JSON pointer ("/properties/a/items"). */
export function at(schema: JsonSchema, pointer: string): JsonSchema {
  let node: unknown = schema;
  for (const key of pointer.split('/').slice(1)) node = (node as Record<string, unknown> | undefined)?.[key];
  if (typeof node !== 'object' || node === null) throw new Error(`nothing at ${pointer} in the chart's schema`);
  return node as JsonSchema;
}

function refName(s: JsonSchema): string | undefined {
  const ref = s.$ref ?? s.allOf?.find((a) => a.$ref !== undefined)?.$ref;
  return ref?.slice(ref.lastIndexOf('/') + 1);
}

/** The value's scalar type: string, integer, number, boolean, or int-or-string. */
function scalar(s: JsonSchema): string {
  if (s['x-kubernetes-int-or-string'] === true || s.format === 'int-or-string') return 'int-or-string';
  const own = s.type === undefined ? [] : typeof s.type === 'string' ? [s.type] : [...s.type];
  // oneOf [integer, string with a pattern]: the chart's int-or-percent.
  const types = [...own, ...(s.oneOf ?? []).flatMap((o) => (typeof o.type === 'string' ? [o.type] : []))];
  if (types.includes('integer') && types.includes('string')) return 'int-or-string';
  const first = types[0];
  if (first !== undefined) return first;
  const sample = s.const ?? s.enum?.[0];
  if (typeof sample === 'boolean') return 'boolean';
  if (typeof sample === 'string') return 'string';
  if (typeof sample === 'number') return Number.isInteger(sample) ? 'integer' : 'number';
  return 'unknown';
}

/** Mismatches between the chart's schema `ours` and the API's `api` at `path`. */
export function compareShapes(ours: JsonSchema, api: JsonSchema, path: string, chart: Definitions, apiDefs: Definitions): string[] {
  const ourRef = refName(ours);
  const apiRef = refName(api);
  if (ourRef === 'stringMap') return compareShapes({ type: 'object', additionalProperties: { type: 'string' } }, api, path, chart, apiDefs);
  if (ourRef === 'quantity') return apiRef === 'io.k8s.apimachinery.pkg.api.resource.Quantity' ? [] : [`${path}: a quantity here, ${apiRef ?? scalar(api)} in the API`];
  const resolvedOurs = ourRef === undefined ? ours : chart[ourRef];
  const resolvedApi = apiRef === undefined ? api : apiDefs[apiRef];
  if (resolvedOurs === undefined || resolvedApi === undefined) return [`${path}: unresolved reference ${ourRef ?? apiRef ?? ''}`];
  if (resolvedOurs.properties !== undefined) {
    const out: string[] = [];
    for (const [name, prop] of Object.entries(resolvedOurs.properties)) {
      // The API's maps (resources.requests: {cpu: …}) type every key alike.
      const apiProp = resolvedApi.properties?.[name] ?? (typeof resolvedApi.additionalProperties === 'object' ? resolvedApi.additionalProperties : undefined);
      if (apiProp === undefined) out.push(`${path}.${name}: not in the API`);
      else out.push(...compareShapes(prop, apiProp, `${path}.${name}`, chart, apiDefs));
    }
    return out;
  }
  if (resolvedOurs.items !== undefined) {
    if (resolvedApi.items === undefined) return [`${path}: a list here, ${scalar(resolvedApi)} in the API`];
    return compareShapes(resolvedOurs.items, resolvedApi.items, `${path}[]`, chart, apiDefs);
  }
  if (typeof resolvedOurs.additionalProperties === 'object') {
    if (typeof resolvedApi.additionalProperties !== 'object') return [`${path}: a map here, ${scalar(resolvedApi)} in the API`];
    return compareShapes(resolvedOurs.additionalProperties, resolvedApi.additionalProperties, `${path}{}`, chart, apiDefs);
  }
  const [mine, theirs] = [scalar(resolvedOurs), scalar(resolvedApi)];
  if (mine !== theirs) return [`${path}: ${mine} here, ${theirs} in the API`];
  const allowed = resolvedApi.enum;
  const extra = allowed === undefined ? [] : [...(resolvedOurs.enum ?? []), ...(resolvedOurs.const === undefined ? [] : [resolvedOurs.const])].filter((v) => !allowed.includes(v));
  return extra.length === 0 ? [] : [`${path}: ${JSON.stringify(extra)} not among the API's values ${JSON.stringify(allowed)}`];
}
