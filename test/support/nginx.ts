// Debian's nginx with the lua and stream modules, as the tests run it: the module list, whether
// it is installed, standalone configs started and stopped (startNginx), the token store's
// keyvals-shaped API and its probe (the same in every config that includes the shipped oss
// snippets, the chart's too: packaging/nginx-pods.ts), and the harness's own nginx "pods" on
// loopback for the snippet and end-to-end tests.
// One harness pod = one nginx master (daemon off, its own prefix dir, pid, logs and temp paths)
// with the three servers of the shipped examples: the client server and the probe server on its
// own 127.0.2.x address ("pod IP"), the token API on loopback (127.0.0.1 and [::1], a port of its
// own per pod since loopback is shared). The shipped nginx-snippets/ files are included unchanged
// through the layout production uses: <conf dir>/apigw-syncer → nginx-snippets/,
// <conf dir>/apigw-pod.conf written by nginx-snippets/render-pod-conf.sh.
// No process started here outlives the test process (see processes.ts).
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, http, waitForHttp, type HttpResult } from './net.js';
import { describeExit, execTracked, runTracked, spawnTracked, withPath, type TrackedProcess } from './processes.js';
import { repoRoot } from './repo-root.js';

export const NGINX_BIN = 'nginx';
/** Debian's dynamic modules for the lua token store (the stand-in for Plus's keyval), ndk first. */
export const DEBIAN_NGINX_MODULES = ['/usr/share/nginx/modules/ndk_http_module.so', '/usr/share/nginx/modules/ngx_http_lua_module.so'] as const;
/** Debian's stream module (libnginx-mod-stream): the Plus zone_sync server's TLS and access rules run on it. */
export const DEBIAN_STREAM_MODULE = '/usr/share/nginx/modules/ngx_stream_module.so';
export const PROBE_PATH = '/apigw-syncer/probe';
export const TOKEN_ZONE = 'apigw_tokens';
/** Test locations the harness adds to every pod: each serves a static file behind a policy. */
export const FAIL_OPEN_PATH = '/fail-open';
export const WAIT_STRICT_PATH = '/wait-strict';
export const BACKEND_BODY = 'served by backend\n';

export const SNIPPETS_DIR = join(repoRoot(), 'nginx-snippets');

/** Why nginx with the lua and stream modules cannot run here, or undefined when it can. */
export function nginxMissing(): string | undefined {
  if (!['/usr/sbin/nginx', '/usr/bin/nginx'].some((p) => existsSync(p))) return 'nginx is not installed (test/tooling/install-nginx.sh)';
  for (const m of [...DEBIAN_NGINX_MODULES, DEBIAN_STREAM_MODULE]) if (!existsSync(m)) return `${m} is missing (test/tooling/install-nginx.sh)`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Pod config: the harness's nginx.conf plays the user's nginx.conf; everything apigw-syncer
// related comes from the shipped files.

export interface NginxPodOptions {
  /** Pod name (DNS-1123): becomes X-Nginx-Origin through the per-pod file. */
  readonly name: string;
  /** 127.0.2.x: this pod's "pod IP". */
  readonly host: string;
  /** The client server's port on `host`. */
  readonly port: number;
  /** The probe server's port on `host` (the sidecars' SYNCER_PROBE_PORT). */
  readonly probePort: number;
  /** host:port of this pod's sidecar (SYNCER_LISTEN_ADDR); nothing needs to listen there. */
  readonly sidecarAddr: string;
  /** Who may call the probe server (the geo block's CIDRs); default: all of loopback. */
  readonly probeSources?: readonly string[];
  /** The token API's port (a restarted pod keeps its own); default: a free one. */
  readonly apiPort?: number;
  /**
   * A second probe listener on `port` over mutual TLS (the shipped probe-server-tls.conf), its
   * certificates in `dir` (tls.crt, tls.key, ca.crt, as the chart mounts them): the same store.
   */
  readonly probeTls?: { readonly port: number; readonly dir: string };
}

export interface NginxPodLayout {
  readonly prefix: string;
  readonly confPath: string;
  readonly errorLog: string;
  readonly accessLog: string;
  /** The token API's port on 127.0.0.1 and [::1]: free when the pod was laid out. */
  readonly apiPort: number;
}

/** Main context of a standalone test nginx: its own pid and error log under `prefix`, `daemon off`, the modules, events{}. */
export function standaloneMain(prefix: string, modules: readonly string[]): string {
  return `daemon off;
master_process on;
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'logs', 'error.log')} info;
${modules.map((m) => `load_module ${m};`).join('\n')}

events {
    worker_connections 512;
}
`;
}

/** http{} lines of a standalone test nginx: its log and temp paths under `prefix`. */
export function httpPaths(prefix: string): string {
  const p = (rel: string): string => join(prefix, rel);
  return `    access_log ${p('logs/access.log')} combined;
    client_body_temp_path ${p('temp/client_body')};
    proxy_temp_path ${p('temp/proxy')};
    fastcgi_temp_path ${p('temp/fastcgi')};
    uwsgi_temp_path ${p('temp/uwsgi')};
    scgi_temp_path ${p('temp/scgi')};
`;
}

/** A whole standalone test config (no modules): main context, then http{} with its paths and `servers` (server{} blocks). */
export function standaloneHttpConf(prefix: string, servers: string): string {
  return `${standaloneMain(prefix, [])}
http {
${httpPaths(prefix)}
${servers}
}
`;
}

/** A fresh prefix dir for one test nginx, with logs/, temp/ and www/. */
export async function makePrefixDir(name: string): Promise<string> {
  const prefix = await mkdtemp(join(tmpdir(), `apigw-nginx-${name}-`));
  // Workers run as nobody when the master is root: they must traverse the dir and read www/.
  await chmod(prefix, 0o755);
  for (const d of ['logs', 'temp', 'www']) await mkdir(join(prefix, d), { recursive: true });
  return prefix;
}

/** A probe server's TLS listener and certificates, as the chart renders them. */
function probeTlsLines(host: string, tls: { readonly port: number; readonly dir: string }): string {
  return `        listen ${host}:${tls.port} ssl;
        ssl_certificate ${join(tls.dir, 'tls.crt')};
        ssl_certificate_key ${join(tls.dir, 'tls.key')};
        ssl_client_certificate ${join(tls.dir, 'ca.crt')};
        include apigw-syncer/common/probe-server-tls.conf;
`;
}

/** The top-level config of a test pod: main-context paths are the pod's own; `daemon off`. */
export function buildNginxConf(opts: NginxPodOptions, prefix: string, apiPort: number): string {
  const p = (rel: string): string => join(prefix, rel);
  return `# Test pod ${opts.name}: generated by test/support/nginx.ts. apigw-syncer parts are the
# shipped files, included unchanged through ./apigw-syncer (a symlink to nginx-snippets/).
${standaloneMain(prefix, DEBIAN_NGINX_MODULES)}
http {
    default_type text/plain;
${httpPaths(prefix)}
    include apigw-pod.conf;
    include apigw-syncer/common/http.conf;
    include apigw-syncer/oss/token-store-http.conf;

    geo $apigw_probe_denied {
        default 1;
${(opts.probeSources ?? ['127.0.0.0/8']).map((cidr) => `        ${cidr} 0;`).join('\n')}
    }

    server {
        listen ${opts.host}:${opts.probePort};
${opts.probeTls === undefined ? '' : probeTlsLines(opts.host, opts.probeTls)}        include apigw-syncer/oss/token-store-probe.conf;
    }

    server {
        listen 127.0.0.1:${apiPort};
        listen [::1]:${apiPort};
        include apigw-syncer/oss/token-store-api.conf;
    }

    server {
        listen ${opts.host}:${opts.port};
        large_client_header_buffers 4 16k;

        include apigw-syncer/common/check-locations.conf;

        # "Backend" = a static file: a content handler, so the access phase (auth_request) runs.
        location = ${FAIL_OPEN_PATH} {
            include apigw-syncer/common/policy-fail-open.conf;
            alias ${p('www/backend.txt')};
        }

        location = ${WAIT_STRICT_PATH} {
            include apigw-syncer/common/policy-wait-strict.conf;
            alias ${p('www/backend.txt')};
        }
    }
}
`;
}

/** Runs the shipped render-pod-conf.sh with exactly `env` (plus PATH); rejects if it refuses. */
export async function runRenderPodConf(out: string, env: Readonly<Record<string, string>>): Promise<void> {
  await execTracked('/bin/sh', [join(SNIPPETS_DIR, 'render-pod-conf.sh'), out], { env: withPath(env) });
}

/** Renders the per-pod file with the shipped script, exactly as a container entrypoint would. */
export function renderPodConf(out: string, env: { podName: string; sidecarAddr: string }): Promise<void> {
  return runRenderPodConf(out, { POD_NAME: env.podName, SYNCER_LISTEN_ADDR: env.sidecarAddr });
}

/** Creates a pod's prefix dir with config, per-pod file, symlinked snippets, logs and temp dirs. */
export async function preparePodDir(opts: NginxPodOptions): Promise<NginxPodLayout> {
  const prefix = await makePrefixDir(opts.name);
  await symlink(SNIPPETS_DIR, join(prefix, 'apigw-syncer'));
  await renderPodConf(join(prefix, 'apigw-pod.conf'), { podName: opts.name, sidecarAddr: opts.sidecarAddr });
  await writeFile(join(prefix, 'www', 'backend.txt'), BACKEND_BODY);
  const confPath = join(prefix, 'nginx.conf');
  const apiPort = opts.apiPort ?? (await freePort());
  await writeFile(confPath, buildNginxConf(opts, prefix, apiPort));
  return { prefix, confPath, errorLog: join(prefix, 'logs', 'error.log'), accessLog: join(prefix, 'logs', 'access.log'), apiPort };
}

/** `nginx -t` on a config; resolves with nginx's output, rejects with it on failure. */
export async function nginxTest(confPath: string, prefix: string): Promise<string> {
  const r = await runTracked(NGINX_BIN, ['-t', '-q', '-p', prefix, '-c', confPath, '-e', join(prefix, 'nginx-t.log')]);
  if (r.exit.code !== 0) throw new Error(`nginx -t failed for ${confPath} (${describeExit(r.exit)}):\n${r.stderr}`);
  return r.stderr;
}

// ---------------------------------------------------------------------------------------------
// Running nginx: any standalone config, and the harness pods.

/** A running test nginx master. */
export interface RunningNginx {
  readonly process: TrackedProcess;
  /** SIGTERM = nginx's fast shutdown (SIGQUIT would wait for open connections). */
  stop(): Promise<void>;
  /** access.log + error.log so far. */
  logs(): Promise<string>;
}

async function tail(path: string, lines = 20): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Starts nginx on `confPath` (written with standaloneMain/httpPaths under `prefix`) and resolves
 * once `ready()` does; `ready` gets an abort check to pass to its wait. If nginx exits or is not
 * ready in time, stops it and throws with its stderr and the end of its error log.
 */
export async function startNginx(
  name: string,
  prefix: string,
  confPath: string,
  ready: (abortIf: () => Error | undefined) => Promise<unknown>,
): Promise<RunningNginx> {
  const errorLog = join(prefix, 'logs', 'error.log');
  const proc = spawnTracked(NGINX_BIN, ['-p', prefix, '-c', confPath, '-e', errorLog], { cwd: prefix, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const abortIf = (): Error | undefined => {
    const exit = proc.exitStatus();
    return exit === undefined ? undefined : new Error(`nginx ${name} ${describeExit(exit)} before ready`);
  };
  try {
    await ready(abortIf);
  } catch (err) {
    await proc.stop(500);
    throw new Error(`${(err as Error).message}\nstderr: ${stderr}\nerror.log:\n${await tail(errorLog)}`);
  }
  return {
    process: proc,
    async stop() {
      await proc.stop();
    },
    async logs() {
      const read = (p: string): Promise<string> => readFile(p, 'utf8').catch(() => '');
      return `${await read(join(prefix, 'logs', 'access.log'))}\n${await read(errorLog)}`;
    },
  };
}

export interface NginxPod extends NginxPodLayout, RunningNginx {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** The client server: http://host:port. */
  readonly baseUrl: string;
  /** The probe server: http://host:probePort. */
  readonly probeUrl: string;
  /** The token API: http://127.0.0.1:apiPort. */
  readonly apiUrl: string;
}

/** Starts one pod and waits (deadline `readyTimeoutMs`) until its token API answers (nginx binds every listener at start). */
export async function startNginxPod(opts: NginxPodOptions, readyTimeoutMs = 10_000): Promise<NginxPod> {
  const layout = await preparePodDir(opts);
  const apiUrl = `http://127.0.0.1:${layout.apiPort}`;
  let nginx: RunningNginx;
  try {
    nginx = await startNginx(opts.name, layout.prefix, layout.confPath, (abortIf) =>
      waitForHttp(keyvalsUrl(apiUrl), { requestTimeoutMs: 500, timeoutMs: readyTimeoutMs, intervalMs: 20, abortIf }),
    );
  } catch (err) {
    await removePodDir(layout);
    throw err;
  }
  return {
    ...layout,
    ...nginx,
    name: opts.name,
    host: opts.host,
    port: opts.port,
    baseUrl: `http://${opts.host}:${opts.port}`,
    probeUrl: `http://${opts.host}:${opts.probePort}`,
    apiUrl,
  };
}

export interface NginxPeers {
  readonly pods: readonly NginxPod[];
  /** SYNCER_PEERS for a sidecar of pods[0]: every pod as name=host:probePort. */
  readonly peersEnv: string;
  readonly probePort: number;
  /** The probe listener over mutual TLS, when the pods were started with certificates. */
  readonly probeTlsPort: number | undefined;
  /** Stops every pod and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Starts `count` pods on `${net}${first}`, `${net}${first + 1}`, … with the same client and probe
 * ports, like a Deployment's pods: a few at a time, since many nginx masters starting at once only
 * slow each other down.
 */
export async function startNginxPeers(count: number, net: string, first: number, probeTlsDir?: string): Promise<NginxPeers> {
  const port = await freePort(`${net}${first}`);
  const probePort = await freePort(`${net}${first}`);
  const probeTls = probeTlsDir === undefined ? undefined : { port: await freePort(`${net}${first}`), dir: probeTlsDir };
  const pods: NginxPod[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(pods.map(async (p) => {
      await p.stop();
      await removePodDir(p);
    }));
  };
  try {
    for (let i = 0; i < count; i += 8) {
      const batch = Array.from({ length: Math.min(8, count - i) }, (_, j) =>
        startNginxPod({ name: `pod-${i + j}`, host: `${net}${first + i + j}`, port, probePort, sidecarAddr: '127.0.0.1:1', ...(probeTls === undefined ? {} : { probeTls }) }),
      );
      pods.push(...(await Promise.all(batch)));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { pods, peersEnv: pods.map((p) => `${p.name}=${p.host}:${probePort}`).join(','), probePort, probeTlsPort: probeTls?.port, stop };
}

/** Removes a stopped pod's prefix dir (logs included: read them first if needed). */
export async function removePodDir(pod: NginxPodLayout): Promise<void> {
  await rm(pod.prefix, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// The token store's keyvals-shaped API (the same URL and JSON as the NGINX Plus API), on each
// replica's loopback API server (`apiUrl`), and its probe, on the probe server (`probeUrl`).

export function keyvalsUrl(apiUrl: string, zone = TOKEN_ZONE): string {
  return `${apiUrl}/api/9/http/keyvals/${zone}`;
}

/** POSTs a token to one replica's store, like the Plus API; resolves with the answer (201 when written). */
export function postToken(apiUrl: string, token: string, value = 'issued', expireMs?: number): Promise<HttpResult> {
  const entry = expireMs === undefined ? value : { value, expire: expireMs };
  return http(keyvalsUrl(apiUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ [token]: entry }),
  });
}

/**
 * Adds many tokens to one replica's store in one request: its zone must be empty (Plus's rule), and
 * the body within the API's 12k bound (short tokens: a thousand "0".."999" fit). Throws unless 201.
 */
export async function writeTokens(apiUrl: string, tokens: readonly string[], value = '1'): Promise<void> {
  const res = await http(keyvalsUrl(apiUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(Object.fromEntries(tokens.map((t) => [t, value]))),
  });
  if (res.status !== 201) throw new Error(`write of ${tokens.length} tokens to ${apiUrl}: ${res.status} ${res.body.slice(0, 200)}`);
}

/** Adds a token to one replica's store; throws unless 201. */
export async function writeToken(apiUrl: string, token: string, value = 'issued', expireMs?: number): Promise<void> {
  const res = await postToken(apiUrl, token, value, expireMs);
  if (res.status !== 201) throw new Error(`write to ${apiUrl}: ${res.status} ${res.body.slice(0, 200)}`);
}

/** Asks a replica's probe server about a token: 200 known, 401 not (yet), 403 from a refused source. */
export async function probe(probeUrl: string, token: string, localAddress?: string): Promise<number> {
  return (await http(`${probeUrl}${PROBE_PATH}`, { headers: { authorization: `Bearer ${token}` }, localAddress })).status;
}
