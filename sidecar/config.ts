// The one typed configuration object, parsed and validated from the environment in one place.
// Every problem is collected so an operator sees them all at once, each with its variable's name.
import { isIP } from 'node:net';
import { peerOrigin, type Peer } from './model.js';

export type DiscoveryMode = 'static' | 'kubernetes' | 'dns';
export type PeerScope = 'revision' | 'deployment';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface Config {
  readonly pod: { readonly name: string; readonly namespace: string; readonly ip: string | undefined };
  readonly logLevel: LogLevel;
  readonly listen: HostPort;
  readonly ops: HostPort;
  readonly discovery: {
    readonly mode: DiscoveryMode;
    readonly staticPeers: readonly Peer[];
    readonly kubernetes: {
      readonly deployment: string | undefined;
      readonly scope: PeerScope;
      readonly resyncMs: number;
      readonly coalesceMs: number;
      readonly watchTimeoutS: number;
    };
    readonly dns: { readonly name: string | undefined; readonly intervalMs: number };
  };
  readonly probe: {
    readonly scheme: 'http' | 'https';
    readonly port: number;
    readonly path: string;
    readonly header: string;
    readonly headerPrefix: string;
    readonly timeoutMs: number;
    readonly connectionsPerPeer: number;
    /** https only: files are read at start and re-read when they change (rotated Secrets). */
    readonly tls: {
      readonly caFile: string | undefined;
      readonly certFile: string | undefined;
      readonly keyFile: string | undefined;
      readonly servername: string | undefined;
    };
  };
  readonly retry: {
    readonly delayMs: number;
    readonly backoff: number;
    readonly maxDelayMs: number;
    readonly jitter: number;
    readonly maxRetries: number;
  };
  readonly hardTimeoutMs: number;
  readonly checks: {
    readonly maxInFlight: number;
    readonly syncedTtlMs: number;
    readonly syncedMax: number;
  };
  /** The canary (off: undefined): a random key written to the own replica, then probed on every peer. */
  readonly canary: CanaryConfig | undefined;
}

export interface CanaryConfig {
  readonly intervalMs: number;
  /** How long one run waits for the key at every peer; less than intervalMs. */
  readonly timeoutMs: number;
  /** The own replica's keyvals API: http(s)://<loopback>:<port>/api/<version>/http/keyvals/<zone>. */
  readonly url: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

export type ConfigResult =
  | { readonly ok: true; readonly config: Config }
  | { readonly ok: false; readonly errors: readonly string[] };

/** Where the environment's gaps are filled from; injected so parsing stays pure in tests. */
export interface ConfigContext {
  readonly hostname: string;
  /** The service-account namespace file's content, when mounted. */
  readonly serviceAccountNamespace: string | undefined;
}

/** Each variable with its default and meaning: the README table is checked against this list. */
export const VARIABLES = {
  POD_NAME: { default: '(hostname)', doc: 'This pod’s name (downward API); the default origin.' },
  POD_NAMESPACE: { default: '(service-account namespace, else "default")', doc: 'Namespace to discover peers in.' },
  POD_IP: { default: '(unset)', doc: 'This pod’s IP (downward API); excluded from DNS discovery.' },
  LOG_LEVEL: { default: 'info', doc: 'fatal, error, warn, info, debug, trace or silent.' },
  SYNCER_LISTEN_ADDR: { default: '127.0.0.1:8080', doc: 'Check API listener (nginx auth_request calls it).' },
  SYNCER_OPS_ADDR: { default: '0.0.0.0:9090', doc: 'Ops listener: /healthz, /readyz, /metrics, /openapi.json.' },
  SYNCER_DISCOVERY: { default: 'kubernetes if KUBERNETES_SERVICE_HOST is set, else static', doc: 'static, kubernetes or dns.' },
  SYNCER_PEERS: { default: '(empty)', doc: 'Static peers: comma-separated name=host:port (the port replaces SYNCER_PROBE_PORT).' },
  SYNCER_DEPLOYMENT: { default: '(found from this pod’s ownerReferences)', doc: 'kubernetes: the apigw Deployment’s name.' },
  SYNCER_PEER_SCOPE: { default: 'revision', doc: 'kubernetes: revision (active ReplicaSet only) or deployment (every ReplicaSet).' },
  SYNCER_RESYNC_MS: { default: '300000', doc: 'kubernetes: safety-net relist period.' },
  SYNCER_COALESCE_MS: { default: '25', doc: 'kubernetes: events within this window make one new peer set.' },
  SYNCER_WATCH_TIMEOUT_S: { default: '60', doc: 'kubernetes: server-side bound of one watch request; a quiet watch past it is treated as dead.' },
  SYNCER_DNS_NAME: { default: '(required for dns)', doc: 'dns: the headless Service name to resolve.' },
  SYNCER_DNS_INTERVAL_MS: { default: '5000', doc: 'dns: how often to resolve.' },
  SYNCER_PROBE_SCHEME: { default: 'http', doc: 'http or https for peer probes.' },
  SYNCER_PROBE_PORT: { default: '80', doc: 'Peer nginx port serving the probe location.' },
  SYNCER_PROBE_PATH: { default: '/apigw-syncer/probe', doc: 'Peer location that answers 200 when it holds the token, 401 when not.' },
  SYNCER_PROBE_HEADER: { default: 'Authorization', doc: 'Header that carries the token to peers.' },
  SYNCER_PROBE_HEADER_PREFIX: { default: '"Bearer "', doc: 'Text put before the token in that header.' },
  SYNCER_PROBE_TIMEOUT_MS: { default: '250', doc: 'Bound of one probe, from leaving the sidecar’s queue to the end of the answer (connect, headers and body).' },
  SYNCER_PROBE_CONNECTIONS: { default: '8', doc: 'Keep-alive connections per peer, at most (each peer’s nginx holds this many from every other replica).' },
  SYNCER_PROBE_CA_FILE: { default: '(system CAs)', doc: 'https: PEM file of the CA(s) that peers’ certificates must chain to.' },
  SYNCER_PROBE_CERT_FILE: { default: '(none)', doc: 'https: PEM client certificate, for peers that require mTLS (with SYNCER_PROBE_KEY_FILE).' },
  SYNCER_PROBE_KEY_FILE: { default: '(none)', doc: 'https: PEM private key of SYNCER_PROBE_CERT_FILE.' },
  SYNCER_PROBE_SERVERNAME: { default: '(the peer’s address)', doc: 'https: the name peers’ certificates are verified against (and sent as SNI), since peers are probed by IP.' },
  SYNCER_RETRY_DELAY_MS: { default: '16', doc: 'Shortest delay before probing again a peer that answered 401 or failed: the detection lag of early arrivals.' },
  SYNCER_RETRY_BACKOFF: { default: '1.2', doc: 'Growth of the delay: it is at least (this − 1) × the time already waited, so it grows by this factor per retry.' },
  SYNCER_RETRY_MAX_DELAY_MS: { default: '200', doc: 'Cap of one retry delay.' },
  SYNCER_RETRY_JITTER: { default: '0.2', doc: 'Each delay varies by ± this fraction, so replicas do not retry in lockstep.' },
  SYNCER_MAX_RETRIES: { default: '30', doc: 'Retries per peer after its first probe, at most; retries also stop when an answer could not arrive 100 ms before the deadline.' },
  SYNCER_HARD_TIMEOUT_MS: { default: '1500', doc: 'Deadline of a whole check; a peer unresolved then keeps its last answer, or is "timeout" if it never answered.' },
  SYNCER_MAX_IN_FLIGHT: { default: '128', doc: 'Check requests that may wait for a verdict at once; past it, 503 + Retry-After (overloaded). 128 × 31 peers is what one core probes within the deadline.' },
  SYNCER_SYNCED_TTL_MS: { default: '30000', doc: 'How long a Synced verdict is remembered and answered again without probing (0: never).' },
  SYNCER_SYNCED_MAX: { default: '100000', doc: 'Most Synced verdicts remembered; the oldest are forgotten first.' },
  SYNCER_CANARY_INTERVAL_MS: { default: '0', doc: 'Canary period (0: off): every this often a random key that expires within seconds is written to this pod’s token API and probed for on every peer.' },
  SYNCER_CANARY_TIMEOUT_MS: { default: '5000', doc: 'Canary: how long one run waits for the key to arrive at every peer (less than the interval).' },
  SYNCER_CANARY_URL: { default: 'http://127.0.0.1:8002/api/9/http/keyvals/apigw_tokens', doc: 'Canary: this pod’s token API (the keyvals API of the token zone), on loopback.' },
} as const;

export type VariableName = keyof typeof VARIABLES;

/**
 * What a value below a setting's minimum would do, said with the refusal: each is a value the
 * program could start with and then be useless (SYNCER_MAX_IN_FLIGHT=0 would refuse every check).
 */
const BELOW_MINIMUM: Partial<Record<VariableName, string>> = {
  SYNCER_RESYNC_MS: 'relisting more often than every second only loads the API server',
  SYNCER_WATCH_TIMEOUT_S: 'watches would have no server-side bound, and the watchdog would cut every one after 5 s',
  SYNCER_DNS_INTERVAL_MS: 'resolving more often than every 100 ms only loads the resolver',
  SYNCER_PROBE_PORT: 'no peer can be probed on port 0',
  SYNCER_PROBE_TIMEOUT_MS: 'every probe would time out before a peer could answer',
  SYNCER_PROBE_CONNECTIONS: 'no probe could ever be sent',
  SYNCER_RETRY_DELAY_MS: 'retries would hit a peer back to back',
  SYNCER_RETRY_BACKOFF: 'the delays would shrink instead of grow',
  SYNCER_HARD_TIMEOUT_MS: 'every check would be answered Timeout',
  SYNCER_MAX_IN_FLIGHT: 'every check would be refused as overloaded',
  SYNCER_SYNCED_MAX: 'nothing could be remembered (SYNCER_SYNCED_TTL_MS=0 turns the memo off)',
};

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
// RFC 7230 token characters: what a header name may contain.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// A DNS-1123 name, or any string kubelet would accept as a pod name / peer name in our lists.
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
// An RFC 1123 host name: labels of letters, digits and inner hyphens, 253 characters at most.
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

/** Collects errors while reading variables, so that parsing reports all of them at once. */
class Reader {
  readonly errors: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: VariableName): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  fail(name: VariableName, message: string): void {
    this.errors.push(`${name}: ${message}`);
  }

  string(name: VariableName, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  /** Like string, but keeps surrounding spaces: a prefix such as "Bearer " needs its space. */
  verbatim(name: VariableName, fallback: string): string {
    return this.env[name] ?? fallback;
  }

  number(name: VariableName, fallback: number, min: number, max: number, integer = true): number {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
      this.fail(name, `must be ${integer ? 'an integer' : 'a number'}, got "${text}"`);
      return fallback;
    }
    if (value < min || value > max) {
      const below = value < min ? BELOW_MINIMUM[name] : undefined;
      this.fail(name, `must be between ${min} and ${max}, got ${value}${below === undefined ? '' : `: ${below}`}`);
      return fallback;
    }
    return value;
  }

  oneOf<T extends string>(name: VariableName, allowed: readonly T[], fallback: T): T {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    const found = allowed.find((a) => a === text);
    if (found === undefined) this.fail(name, `must be one of ${allowed.join(', ')}, got "${text}"`);
    return found ?? fallback;
  }

  hostPort(name: VariableName, fallback: string): HostPort {
    const text = this.raw(name) ?? fallback;
    const parsed = parseHostPort(text);
    if (typeof parsed === 'string') {
      this.fail(name, parsed);
      return { host: '127.0.0.1', port: 0 };
    }
    return parsed;
  }
}

/** "host:port" or "[v6]:port" → HostPort, or a message saying what is wrong. Port 0 means "any free port". */
export function parseHostPort(text: string): HostPort | string {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  if (!m) return `must be host:port, got "${text}"`;
  // Exactly one of the two alternatives matched: a bracketed IPv6 address or a plain host.
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65535) return `port must be 0-65535, got ${port}`;
  if (m[1] !== undefined && isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  return { host, port };
}

/**
 * Why `host` cannot be probed, or undefined when it can: checked the way the probe URL is built
 * (model.ts peerOrigin, then WHATWG URL as undici parses it), so configuration accepts only
 * what the probe layer accepts.
 */
export function unprobeableHost(host: string, port: number, scheme: 'http' | 'https'): string | undefined {
  if (isIP(host) === 0 && !HOST_NAME.test(host)) return `"${host}" is not an IP address or host name`;
  const origin = peerOrigin(scheme, host, port);
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return `"${host}" cannot be part of a URL (${origin})`;
  }
  const expected = isIP(host) === 6 ? `[${host}]` : host.toLowerCase();
  if (url.hostname !== expected) return `"${host}" would be probed as "${url.hostname}": write that instead`;
  return undefined;
}

// The keyvals API of one zone, as NGINX Plus serves it (and the open-source stand-in mimics).
const KEYVALS_PATH = /^\/api\/[0-9]{1,3}\/http\/keyvals\/[A-Za-z0-9_-]+$/;

/**
 * Why `text` cannot be the canary's URL, or undefined when it can: the own replica's keyvals API,
 * reached over loopback only — a key is never written to another pod's API across the network.
 */
export function canaryUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `must be a URL, got "${text}"`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `must be http or https, got "${url.protocol}"`;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
  if (!loopback) return `must point at this pod's own token API on loopback (127.x.x.x, [::1] or localhost), got "${url.hostname}"`;
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return 'must hold no credentials, query or fragment';
  if (!KEYVALS_PATH.test(url.pathname)) return `path must be /api/<version>/http/keyvals/<zone>, got "${url.pathname}"`;
  return undefined;
}

function parseCanary(r: Reader): CanaryConfig | undefined {
  const intervalMs = r.number('SYNCER_CANARY_INTERVAL_MS', 0, 0, 3_600_000);
  if (intervalMs > 0 && intervalMs < 1_000) {
    r.fail('SYNCER_CANARY_INTERVAL_MS', `must be 0 (off) or at least 1000, got ${intervalMs}`);
    return undefined;
  }
  const timeoutMs = r.number('SYNCER_CANARY_TIMEOUT_MS', 5_000, 100, 600_000);
  const url = r.string('SYNCER_CANARY_URL', VARIABLES.SYNCER_CANARY_URL.default);
  if (intervalMs === 0) {
    for (const name of ['SYNCER_CANARY_TIMEOUT_MS', 'SYNCER_CANARY_URL'] as const) {
      if (r.raw(name) !== undefined) r.fail(name, 'is only used with SYNCER_CANARY_INTERVAL_MS > 0 (the canary is off)');
    }
    return undefined;
  }
  if (timeoutMs >= intervalMs) r.fail('SYNCER_CANARY_TIMEOUT_MS', `must be less than SYNCER_CANARY_INTERVAL_MS (${intervalMs}), so runs never overlap`);
  const problem = canaryUrlProblem(url);
  if (problem !== undefined) r.fail('SYNCER_CANARY_URL', problem);
  return { intervalMs, timeoutMs, url };
}

function parsePeers(r: Reader, scheme: 'http' | 'https'): Peer[] {
  const text = r.raw('SYNCER_PEERS');
  if (text === undefined) return [];
  const peers: Peer[] = [];
  const names = new Set<string>();
  for (const item of text.split(',')) {
    const entry = item.trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    const name = entry.slice(0, eq);
    if (eq === -1 || !NAME.test(name)) {
      r.fail('SYNCER_PEERS', `"${entry}" must be name=host:port with a lowercase DNS-style name`);
      continue;
    }
    const hp = parseHostPort(entry.slice(eq + 1));
    if (typeof hp === 'string' || hp.port === 0) {
      r.fail('SYNCER_PEERS', `peer "${name}": ${typeof hp === 'string' ? hp : 'port must not be 0'}`);
      continue;
    }
    const unprobeable = unprobeableHost(hp.host, hp.port, scheme);
    if (unprobeable !== undefined) {
      r.fail('SYNCER_PEERS', `peer "${name}": ${unprobeable}`);
      continue;
    }
    if (names.has(name)) {
      r.fail('SYNCER_PEERS', `peer "${name}" is listed twice`);
      continue;
    }
    names.add(name);
    peers.push({ name, host: hp.host, port: hp.port });
  }
  return peers;
}

export function parseConfig(env: Env, context: ConfigContext): ConfigResult {
  const r = new Reader(env);
  const podName = r.string('POD_NAME', context.hostname);
  const namespace = r.raw('POD_NAMESPACE') ?? context.serviceAccountNamespace?.trim() ?? 'default';
  const podIp = r.raw('POD_IP');
  if (podIp !== undefined && isIP(podIp) === 0) r.fail('POD_IP', `must be an IP address, got "${podIp}"`);

  const inCluster = (env['KUBERNETES_SERVICE_HOST'] ?? '') !== '';
  const mode = r.oneOf<DiscoveryMode>('SYNCER_DISCOVERY', ['static', 'kubernetes', 'dns'], inCluster ? 'kubernetes' : 'static');
  const scheme = r.oneOf('SYNCER_PROBE_SCHEME', ['http', 'https'] as const, 'http');
  const staticPeers = parsePeers(r, scheme);
  const dnsName = r.raw('SYNCER_DNS_NAME');
  if (mode === 'dns' && dnsName === undefined) r.fail('SYNCER_DNS_NAME', 'is required when SYNCER_DISCOVERY=dns');
  if (mode !== 'static' && staticPeers.length > 0) {
    r.fail('SYNCER_PEERS', `is only used with SYNCER_DISCOVERY=static (discovery is ${mode})`);
  }

  const path = r.string('SYNCER_PROBE_PATH', '/apigw-syncer/probe');
  if (!/^\/[\x21-\x7e]*$/.test(path)) r.fail('SYNCER_PROBE_PATH', `must start with "/" and hold no spaces, got "${path}"`);
  const header = r.string('SYNCER_PROBE_HEADER', 'Authorization');
  if (!HEADER_NAME.test(header)) r.fail('SYNCER_PROBE_HEADER', `"${header}" is not a valid header name`);
  const headerPrefix = r.verbatim('SYNCER_PROBE_HEADER_PREFIX', 'Bearer ');
  if (!/^[\x20-\x7e]*$/.test(headerPrefix)) r.fail('SYNCER_PROBE_HEADER_PREFIX', 'must be printable ASCII');

  const tls = {
    caFile: r.raw('SYNCER_PROBE_CA_FILE'),
    certFile: r.raw('SYNCER_PROBE_CERT_FILE'),
    keyFile: r.raw('SYNCER_PROBE_KEY_FILE'),
    servername: r.raw('SYNCER_PROBE_SERVERNAME'),
  };
  if (scheme === 'http') {
    for (const name of ['SYNCER_PROBE_CA_FILE', 'SYNCER_PROBE_CERT_FILE', 'SYNCER_PROBE_KEY_FILE', 'SYNCER_PROBE_SERVERNAME'] as const) {
      if (r.raw(name) !== undefined) r.fail(name, 'is only used with SYNCER_PROBE_SCHEME=https');
    }
  }
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    r.fail(tls.certFile === undefined ? 'SYNCER_PROBE_CERT_FILE' : 'SYNCER_PROBE_KEY_FILE', 'SYNCER_PROBE_CERT_FILE and SYNCER_PROBE_KEY_FILE go together');
  }
  if (tls.servername !== undefined && (isIP(tls.servername) !== 0 || !HOST_NAME.test(tls.servername))) {
    r.fail('SYNCER_PROBE_SERVERNAME', `must be a DNS name (a certificate's subjectAltName), got "${tls.servername}"`);
  }

  const delayMs = r.number('SYNCER_RETRY_DELAY_MS', 16, 1, 60_000);
  const maxDelayMs = r.number('SYNCER_RETRY_MAX_DELAY_MS', 200, 0, 60_000);
  if (maxDelayMs < delayMs) r.fail('SYNCER_RETRY_MAX_DELAY_MS', `must be at least SYNCER_RETRY_DELAY_MS (${delayMs})`);

  const config: Config = {
    pod: { name: podName, namespace, ip: podIp },
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    listen: r.hostPort('SYNCER_LISTEN_ADDR', '127.0.0.1:8080'),
    ops: r.hostPort('SYNCER_OPS_ADDR', '0.0.0.0:9090'),
    discovery: {
      mode,
      staticPeers,
      kubernetes: {
        deployment: r.raw('SYNCER_DEPLOYMENT'),
        scope: r.oneOf<PeerScope>('SYNCER_PEER_SCOPE', ['revision', 'deployment'], 'revision'),
        resyncMs: r.number('SYNCER_RESYNC_MS', 300_000, 1_000, 86_400_000),
        coalesceMs: r.number('SYNCER_COALESCE_MS', 25, 0, 5_000),
        watchTimeoutS: r.number('SYNCER_WATCH_TIMEOUT_S', 60, 1, 3_600),
      },
      dns: { name: dnsName, intervalMs: r.number('SYNCER_DNS_INTERVAL_MS', 5_000, 100, 3_600_000) },
    },
    probe: {
      scheme,
      port: r.number('SYNCER_PROBE_PORT', 80, 1, 65_535),
      path,
      header,
      headerPrefix,
      timeoutMs: r.number('SYNCER_PROBE_TIMEOUT_MS', 250, 1, 60_000),
      connectionsPerPeer: r.number('SYNCER_PROBE_CONNECTIONS', 8, 1, 1_024),
      tls,
    },
    retry: {
      delayMs,
      backoff: r.number('SYNCER_RETRY_BACKOFF', 1.2, 1, 10, false),
      maxDelayMs,
      jitter: r.number('SYNCER_RETRY_JITTER', 0.2, 0, 1, false),
      maxRetries: r.number('SYNCER_MAX_RETRIES', 30, 0, 1_000),
    },
    hardTimeoutMs: r.number('SYNCER_HARD_TIMEOUT_MS', 1_500, 1, 120_000),
    checks: {
      maxInFlight: r.number('SYNCER_MAX_IN_FLIGHT', 128, 1, 100_000),
      syncedTtlMs: r.number('SYNCER_SYNCED_TTL_MS', 30_000, 0, 3_600_000),
      syncedMax: r.number('SYNCER_SYNCED_MAX', 100_000, 1, 10_000_000),
    },
    canary: parseCanary(r),
  };
  return r.errors.length > 0 ? { ok: false, errors: r.errors } : { ok: true, config };
}
