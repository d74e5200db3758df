// Real nginx "pods" on loopback for the snippet and end-to-end tests.
// One pod = one nginx master (daemon off, its own prefix dir, pid, logs and temp paths)
// listening on its own 127.0.2.x address, with the shipped nginx-snippets/ files included
// unchanged through the layout production uses: <conf dir>/apigw-syncer → nginx-snippets/,
// <conf dir>/apigw-pod.conf written by nginx-snippets/render-pod-conf.sh.
// No process started here outlives the test process (see spawnTracked).
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const NGINX_BIN = 'nginx';
export const MODULES = ['/usr/share/nginx/modules/ndk_http_module.so', '/usr/share/nginx/modules/ngx_http_lua_module.so'] as const;
export const PROBE_PATH = '/apigw-syncer/probe';
export const TOKEN_ZONE = 'apigw_tokens';
/** Test locations the harness adds to every pod: each serves a static file behind a policy. */
export const FAIL_OPEN_PATH = '/fail-open';
export const WAIT_STRICT_PATH = '/wait-strict';
export const BACKEND_BODY = 'served by backend\n';

/** The repository root: the first ancestor of this file holding nginx-snippets/ (works from test/ and dist/test/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'nginx-snippets', 'render-pod-conf.sh'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find nginx-snippets/ above this file');
    dir = parent;
  }
}

export const SNIPPETS_DIR = join(repoRoot(), 'nginx-snippets');

// ---------------------------------------------------------------------------------------------
// Process tracking: each child runs in its own process group (so nginx's workers go with its
// master) and is killed on 'exit'/SIGINT/SIGTERM/SIGHUP. A watchdog `sh` also holds a pipe from
// us: if we die in a way no hook sees (SIGKILL by a test runner's timeout), the pipe closes,
// `read` returns, and the watchdog kills the group.

export interface TrackedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM the group, SIGKILL it after graceMs; resolves once the leader has exited. */
  stop(graceMs?: number): Promise<number | string>;
}

const live = new Map<number, ChildProcess>();
let hooksInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function killAllNow(): void {
  for (const pid of live.keys()) killGroup(pid, 'SIGKILL');
  live.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllNow();
      // Keep the signal's usual effect (death) unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

function startWatchdog(pid: number): ChildProcess {
  // bash, not sh: dash's kill builtin does not take a negative pid (a process group).
  const dog = spawn('/bin/bash', ['-c', `read -r _ignored; kill -KILL -- -${pid} 2>/dev/null; exit 0`], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  dog.on('error', () => undefined);
  dog.unref();
  // Neither the watchdog nor its pipe may keep our event loop alive.
  if (dog.stdin instanceof Socket) dog.stdin.unref();
  return dog;
}

/** Spawns `command` as the leader of a new process group and tracks it (see above). */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): TrackedProcess {
  installHooks();
  const child = spawn(command, args, { ...options, detached: true });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${command}`);
  live.set(pid, child);
  const dog = startWatchdog(pid);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(pid);
      // Workers of a dead master, grandchildren of a dead node: nothing of the group stays.
      killGroup(pid, 'SIGKILL');
      // Release the watchdog now, while the group id cannot have been reused yet.
      dog.stdin?.end();
      resolve(code ?? signal ?? 'unknown');
    });
  });
  // A forgotten child must not keep the test process alive; the 'exit' hook still kills it.
  child.unref();
  const stop = async (graceMs = 3_000): Promise<number | string> => {
    if (live.has(pid)) {
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    }
    return exited;
  };
  return { child, pid, exited, stop };
}

/** Pids of tracked process groups still running (tests assert cleanup with it). */
export function livePids(): number[] {
  return [...live.keys()];
}

// ---------------------------------------------------------------------------------------------
// HTTP and waiting helpers.

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface HttpOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly timeoutMs?: number;
}

/** One request on a fresh connection (no pooling: each test request is independent). */
export function http(url: string, options: HttpOptions = {}): Promise<HttpResult> {
  const { method = 'GET', headers = {}, body, timeoutMs = 10_000 } = options;
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `cond` every `everyMs` until it is true; throws after `timeoutMs`. */
export async function pollUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** A port that was free on 127.0.0.1 a moment ago (the kernel picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Pod config: the harness's nginx.conf plays the user's nginx.conf; everything apigw-syncer
// related comes from the shipped files.

export interface NginxPodOptions {
  /** Pod name (DNS-1123): becomes X-Nginx-Origin through the per-pod file. */
  readonly name: string;
  /** 127.0.2.x: this pod's "pod IP". */
  readonly host: string;
  readonly port: number;
  /** host:port of this pod's sidecar (SYNCER_LISTEN_ADDR); nothing needs to listen there. */
  readonly sidecarAddr: string;
}

export interface NginxPodLayout {
  readonly prefix: string;
  readonly confPath: string;
  readonly errorLog: string;
  readonly accessLog: string;
}

/** The top-level config of a test pod: main-context paths are the pod's own; `daemon off`. */
export function buildNginxConf(opts: NginxPodOptions, prefix: string): string {
  const p = (rel: string): string => join(prefix, rel);
  return `# Test pod ${opts.name}: generated by test/support/nginx.ts. apigw-syncer parts are the
# shipped files, included unchanged through ./apigw-syncer (a symlink to nginx-snippets/).
daemon off;
master_process on;
worker_processes 1;
pid ${p('nginx.pid')};
error_log ${p('logs/error.log')} info;
${MODULES.map((m) => `load_module ${m};`).join('\n')}

events {
    worker_connections 512;
}

http {
    default_type text/plain;
    access_log ${p('logs/access.log')} combined;
    client_body_temp_path ${p('temp/client_body')};
    proxy_temp_path ${p('temp/proxy')};
    fastcgi_temp_path ${p('temp/fastcgi')};
    uwsgi_temp_path ${p('temp/uwsgi')};
    scgi_temp_path ${p('temp/scgi')};

    include apigw-pod.conf;
    include apigw-syncer/common/http.conf;
    include apigw-syncer/oss/token-store-http.conf;

    server {
        listen ${opts.host}:${opts.port};

        include apigw-syncer/oss/token-store-server.conf;
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

/** Renders the per-pod file with the shipped script, exactly as a container entrypoint would. */
export async function renderPodConf(out: string, env: { podName: string; sidecarAddr: string; verdictSocket: string }): Promise<void> {
  await execFileP('/bin/sh', [join(SNIPPETS_DIR, 'render-pod-conf.sh'), out], {
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      POD_NAME: env.podName,
      SYNCER_LISTEN_ADDR: env.sidecarAddr,
      APIGW_SYNCER_VERDICT_SOCKET: env.verdictSocket,
    },
  });
}

/** Creates a pod's prefix dir with config, per-pod file, symlinked snippets, logs and temp dirs. */
export async function preparePodDir(opts: NginxPodOptions): Promise<NginxPodLayout> {
  const prefix = await mkdtemp(join(tmpdir(), `apigw-nginx-${opts.name}-`));
  // Workers run as nobody when the master is root: they must traverse the dir and read www/.
  await chmod(prefix, 0o755);
  for (const d of ['logs', 'temp', 'www']) await mkdir(join(prefix, d), { recursive: true });
  await symlink(SNIPPETS_DIR, join(prefix, 'apigw-syncer'));
  await renderPodConf(join(prefix, 'apigw-pod.conf'), {
    podName: opts.name,
    sidecarAddr: opts.sidecarAddr,
    verdictSocket: join(prefix, 'verdict.sock'),
  });
  await writeFile(join(prefix, 'www', 'backend.txt'), BACKEND_BODY);
  const confPath = join(prefix, 'nginx.conf');
  await writeFile(confPath, buildNginxConf(opts, prefix));
  return { prefix, confPath, errorLog: join(prefix, 'logs', 'error.log'), accessLog: join(prefix, 'logs', 'access.log') };
}

/** `nginx -t` on a config; resolves with nginx's output, rejects with it on failure. */
export async function nginxTest(confPath: string, prefix: string): Promise<string> {
  try {
    const { stderr } = await execFileP(NGINX_BIN, ['-t', '-q', '-p', prefix, '-c', confPath, '-e', join(prefix, 'nginx-t.log')]);
    return stderr;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`nginx -t failed for ${confPath}:\n${e.stderr ?? e.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Running pods.

export interface NginxPod extends NginxPodLayout {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly baseUrl: string;
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

/** Starts one pod and waits (deadline `readyTimeoutMs`) until its probe location answers. */
export async function startNginxPod(opts: NginxPodOptions, readyTimeoutMs = 10_000): Promise<NginxPod> {
  const layout = await preparePodDir(opts);
  const proc = spawnTracked(NGINX_BIN, ['-p', layout.prefix, '-c', layout.confPath, '-e', layout.errorLog], {
    cwd: layout.prefix,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const baseUrl = `http://${opts.host}:${opts.port}`;
  let exitedEarly: number | string | undefined;
  void proc.exited.then((code) => (exitedEarly = code));
  try {
    await pollUntil(
      async () => {
        if (exitedEarly !== undefined) throw new Error(`nginx ${opts.name} exited (${exitedEarly}) before ready`);
        return waitForPod(baseUrl);
      },
      `nginx ${opts.name} on ${opts.host}:${opts.port}`,
      readyTimeoutMs,
      20,
    );
  } catch (err) {
    await proc.stop(500);
    const message = `${(err as Error).message}\nstderr: ${stderr}\nerror.log:\n${await tail(layout.errorLog)}`;
    await removePodDir(layout);
    throw new Error(message);
  }
  const pod: NginxPod = {
    ...layout,
    name: opts.name,
    host: opts.host,
    port: opts.port,
    baseUrl,
    process: proc,
    async stop() {
      await proc.stop();
    },
    async logs() {
      const read = (p: string): Promise<string> => readFile(p, 'utf8').catch(() => '');
      return `${await read(layout.accessLog)}\n${await read(layout.errorLog)}`;
    },
  };
  return pod;
}

/** One readiness poll: the probe answers (401 without a token) once nginx accepts requests. */
async function waitForPod(baseUrl: string): Promise<boolean> {
  try {
    const res = await http(`${baseUrl}${PROBE_PATH}`, { timeoutMs: 500 });
    return res.status === 401;
  } catch {
    return false;
  }
}

/** Removes a stopped pod's prefix dir (logs included: read them first if needed). */
export async function removePodDir(pod: NginxPodLayout): Promise<void> {
  await rm(pod.prefix, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// The token store's keyvals-shaped API (the same URL and JSON as the NGINX Plus API).

export function keyvalsUrl(baseUrl: string, zone = TOKEN_ZONE): string {
  return `${baseUrl}/api/9/http/keyvals/${zone}`;
}

/** Adds a token to one replica's store (POST, like the Plus API); throws unless 201. */
export async function writeToken(baseUrl: string, token: string, value = 'issued', expireMs?: number): Promise<void> {
  const entry = expireMs === undefined ? value : { value, expire: expireMs };
  const res = await http(keyvalsUrl(baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ [token]: entry }),
  });
  if (res.status !== 201) throw new Error(`write to ${baseUrl}: ${res.status} ${res.body}`);
}

/** Asks a replica's probe location about a token: 200 known, 401 not (yet). */
export async function probe(baseUrl: string, token: string): Promise<number> {
  return (await http(`${baseUrl}${PROBE_PATH}`, { headers: { authorization: `Bearer ${token}` } })).status;
}
