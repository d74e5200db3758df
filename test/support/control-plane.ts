// A real, throwaway Kubernetes control plane for tests: etcd + kube-apiserver +
// kube-controller-manager, built from Go modules by test/tooling/build-go-tools.sh.
// No kubelet and no scheduler run: see fake-kubelet.ts for pods.
//
// Everything listens on 127.0.0.1 only, in a fresh temp dir per call. Children are started
// through processes.ts (killed with this process however it dies); the temp dirs are removed
// at exit, and swept by a later run if this process was SIGKILLed.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, closeSync, openSync, readdirSync, rmSync, mkdtempSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { freePortsBelowEphemeral } from './net.js';
import { describeExit, onExitCleanup, runTracked, spawnTracked, type TrackedProcess } from './processes.js';
import { toolPaths } from './tools.js';
import { waitFor } from './wait.js';

export interface ControlPlane {
  server: string; // https://127.0.0.1:<port>
  caFile: string;
  caPem: string;
  adminKubeconfig: string; // path of a kubeconfig file with an admin client cert (system:masters)
  kubeconfigFor(serviceAccount: { namespace: string; name: string }): Promise<string>; // path of kubeconfig using a TokenRequest token of that SA
  /**
   * Stop kube-apiserver only (etcd + controller-manager keep running), for outage tests.
   * Default: SIGTERM (it stops listening and closes watches at once), SIGKILL after graceMs
   * (default 2000: a SIGTERMed kube-apiserver otherwise lingers ~15-60 s draining connections).
   * `{ signal: 'SIGKILL' }` simulates a crash.
   */
  stopApiServer(opts?: { signal?: 'SIGTERM' | 'SIGKILL'; graceMs?: number }): Promise<void>;
  startApiServer(): Promise<void>; // start it again on the SAME port and certs; resolves when /readyz is ok
  stop(): Promise<void>; // stop everything, remove temp dir; safe to call twice
  logsDir: string;
  /** Extras beyond the agreed interface. */
  dir: string; // the temp dir (removed by stop() unless APIGW_SYNCER_KEEP_TEMP=1; then it holds a `kept` marker)
  etcdUrl: string; // http://127.0.0.1:<port>
  adminKubeConfig(): KubeConfig; // a fresh KubeConfig loaded from adminKubeconfig
  apiServerRunning(): boolean;
}

export interface ControlPlaneOptions {
  watchCacheSizes?: string; // --watch-cache-sizes for kube-apiserver, e.g. "pods#0"
  extraApiServerArgs?: string[];
}

// ------------------------------------------------------------------ temp dirs and processes

const liveTempDirs = new Set<string>();
let cleanupRegistered = false;

function keepTemp(): boolean {
  return process.env['APIGW_SYNCER_KEEP_TEMP'] === '1';
}

function removeTempDir(d: string): void {
  if (keepTemp()) {
    try {
      writeFileSync(join(d, 'kept'), '');
    } catch {
      /* dir gone */
    }
    return;
  }
  rmSync(d, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
}

function removeTempDirsSync(): void {
  for (const d of liveTempDirs) {
    try {
      removeTempDir(d);
    } catch {
      /* best effort at exit */
    }
  }
  liveTempDirs.clear();
}

function registerCleanup(): void {
  if (cleanupRegistered) return;
  cleanupRegistered = true;
  onExitCleanup(removeTempDirsSync);
}

const TEMP_PREFIX = 'apigw-cp-';

/**
 * Removes temp dirs of earlier runs whose owning process died without cleaning up
 * (SIGKILL): their children died with them (pdeathsig), their files did not.
 * Dirs kept on purpose (APIGW_SYNCER_KEEP_TEMP=1) hold a `kept` marker and stay.
 */
function sweepStaleTempDirs(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((n) => n.startsWith(TEMP_PREFIX));
  } catch {
    return;
  }
  for (const n of names) {
    const d = join(tmpdir(), n);
    try {
      if (existsSync(join(d, 'kept'))) continue;
      const pid = Number(readFileSync(join(d, 'owner.pid'), 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      try {
        process.kill(pid, 0);
        continue; // owner alive
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
      }
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* not ours, or racing another sweeper */
    }
  }
}

function tailFile(path: string, lines = 40): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch {
    return `(no log at ${path})`;
  }
}

/** One managed child process whose stdout+stderr go to a log file (appended across restarts). */
class ManagedProcess {
  private proc: TrackedProcess | undefined;

  constructor(
    readonly name: string,
    private readonly bin: string,
    private readonly args: string[],
    readonly logFile: string,
  ) {}

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitStatus() === undefined;
  }

  /** Why it exited, if it did. */
  get exited(): string | undefined {
    const exit = this.proc?.exitStatus();
    return exit === undefined ? undefined : describeExit(exit);
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const fd = openSync(this.logFile, 'a');
    try {
      this.proc = spawnTracked(this.bin, this.args, {
        stdio: ['ignore', fd, fd],
        env: { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
      });
    } finally {
      closeSync(fd);
    }
  }

  /** SIGTERM (or the given signal), then SIGKILL after timeoutMs; resolves once the process is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
    if (this.proc && this.running) await this.proc.stop(timeoutMs, signal);
  }

  failure(what: string): ProcessFailure {
    return new ProcessFailure(`${what} (${this.name} ${this.exited ?? 'still running'}); last lines of ${this.logFile}:\n${tailFile(this.logFile)}`);
  }

  /** waitFor() that gives up as soon as this process exits, and reports this process's log tail on failure. */
  async waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
    try {
      return await waitFor(fn, what, {
        timeoutMs,
        intervalMs: 100,
        abortIf: () => (this.running ? undefined : this.failure(`${this.name} exited while waiting for ${what}`)),
        retryOnError: true,
      });
    } catch (err) {
      if (err instanceof ProcessFailure) throw err;
      throw this.failure(err instanceof Error ? err.message : String(err));
    }
  }
}

class ProcessFailure extends Error {
  override name = 'ProcessFailure';
}

// ------------------------------------------------------------------ small helpers

interface HttpResult {
  status: number;
  body: string;
}

function get(url: string, tls?: { ca?: string; cert?: string; key?: string; insecure?: boolean }): Promise<HttpResult> {
  return new Promise<HttpResult>((resolve, reject) => {
    const u = new URL(url);
    if (u.hostname !== '127.0.0.1') {
      reject(new Error(`refusing non-loopback URL ${url}`));
      return;
    }
    const opts = {
      method: 'GET',
      timeout: 3000,
      ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: !tls.insecure } : {}),
    };
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, opts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout GET ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

// ------------------------------------------------------------------ certificates

interface Pki {
  caFile: string;
  caKeyFile: string;
  caPem: string;
  serverCert: string;
  serverKey: string;
  saKey: string;
  saPub: string;
  adminCertPem: string;
  adminKeyPem: string;
}

const OPENSSL_CNF = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;

function ecKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await runTracked('openssl', args, { cwd });
  if (r.exit.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (${describeExit(r.exit)}): ${r.stderr}`);
}

async function makePki(dir: string): Promise<Pki> {
  mkdirSync(dir, { recursive: true });
  const f = (n: string): string => join(dir, n);
  writeFileSync(f('openssl.cnf'), OPENSSL_CNF);
  const write = (name: string, pem: string): string => {
    writeFileSync(f(name), pem, { mode: 0o600 });
    return f(name);
  };
  const ca = ecKeyPair();
  write('ca.key', ca.privatePem);
  await openssl(['req', '-x509', '-new', '-config', 'openssl.cnf', '-extensions', 'v3_ca', '-key', 'ca.key', '-subj', '/CN=apigw-syncer-test-ca', '-days', '3650', '-out', 'ca.crt'], dir);

  const sign = async (name: string, subj: string, ext: string): Promise<void> => {
    write(`${name}.key`, ecKeyPair().privatePem);
    await openssl(['req', '-new', '-config', 'openssl.cnf', '-key', `${name}.key`, '-subj', subj, '-out', `${name}.csr`], dir);
    await openssl(
      ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '3650', '-extfile', 'openssl.cnf', '-extensions', ext, '-out', `${name}.crt`],
      dir,
    );
  };
  await Promise.all([sign('apiserver', '/CN=kube-apiserver', 'v3_server'), sign('admin', '/O=system:masters/CN=admin', 'v3_client')]);

  const sa = ecKeyPair();
  return {
    caFile: f('ca.crt'),
    caKeyFile: f('ca.key'),
    caPem: readFileSync(f('ca.crt'), 'utf8'),
    serverCert: f('apiserver.crt'),
    serverKey: f('apiserver.key'),
    saKey: write('sa.key', sa.privatePem),
    saPub: write('sa.pub', sa.publicPem),
    adminCertPem: readFileSync(f('admin.crt'), 'utf8'),
    adminKeyPem: readFileSync(f('admin.key'), 'utf8'),
  };
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

/** A kubeconfig as JSON (valid YAML, read by both client-go and client-node). */
function kubeconfigJson(server: string, caPem: string, user: Record<string, string>, userName: string): string {
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'apigw-test', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
      users: [{ name: userName, user }],
      contexts: [{ name: 'apigw-test', context: { cluster: 'apigw-test', user: userName } }],
      'current-context': 'apigw-test',
    },
    null,
    2,
  );
}

// ------------------------------------------------------------------ the control plane

const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      // A port picked as free can be taken by another test process before our child binds it.
      if (attempt >= 3 || !(err instanceof Error) || !/address already in use/.test(err.message)) throw err;
    }
  }
}

async function startOnce(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const bins = toolPaths();
  registerCleanup();
  sweepStaleTempDirs();
  const dir = mkdtempSync(join(tmpdir(), TEMP_PREFIX));
  liveTempDirs.add(dir);
  writeFileSync(join(dir, 'owner.pid'), `${process.pid}\n`);
  const logsDir = join(dir, 'logs');
  mkdirSync(logsDir);
  const procs: ManagedProcess[] = [];
  let stopped = false;

  const stopAll = async (): Promise<void> => {
    // Controller-manager and apiserver first (they talk to etcd), then etcd.
    const [etcdProc, ...rest] = procs;
    await Promise.all(rest.map((p) => p.stop('SIGTERM', 2000)));
    if (etcdProc) await etcdProc.stop('SIGTERM', 3000);
    removeTempDir(dir);
    liveTempDirs.delete(dir);
  };

  try {
    const pki = await makePki(join(dir, 'pki'));
    const [etcdClientPort, etcdPeerPort, apiPort, kcmPort] = (await freePortsBelowEphemeral(4)) as [number, number, number, number];
    const server = `https://127.0.0.1:${apiPort}`;
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const adminTls = { ca: pki.caPem, cert: pki.adminCertPem, key: pki.adminKeyPem };

    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(
      adminKubeconfig,
      kubeconfigJson(server, pki.caPem, { 'client-certificate-data': b64(pki.adminCertPem), 'client-key-data': b64(pki.adminKeyPem) }, 'admin'),
      { mode: 0o600 },
    );

    // ---- etcd
    const etcd = new ManagedProcess(
      'etcd',
      bins.etcd,
      [
        '--name=default',
        `--data-dir=${join(dir, 'etcd-data')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
      join(logsDir, 'etcd.log'),
    );
    procs.push(etcd);
    etcd.start();
    await etcd.waitFor(
      'etcd /health',
      async () => {
        const r = await get(`${etcdUrl}/health`);
        return r.status === 200 && r.body.includes('"health":"true"');
      },
      30_000,
    );

    // ---- kube-apiserver
    const apiArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      // Endpoints of the `kubernetes` service may not hold a loopback IP: don't reconcile them.
      '--endpoint-reconciler-type=none',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.serverCert}`,
      `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caFile}`,
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=Node,RBAC',
      '--allow-privileged=true',
      '--profiling=false',
      ...(opts.watchCacheSizes ? [`--watch-cache-sizes=${opts.watchCacheSizes}`] : []),
      ...(opts.extraApiServerArgs ?? []),
    ];
    const apiserver = new ManagedProcess('kube-apiserver', bins.kubeApiserver, apiArgs, join(logsDir, 'kube-apiserver.log'));
    procs.push(apiserver);
    const waitApiReady = async (): Promise<void> => {
      await apiserver.waitFor('kube-apiserver /readyz', async () => (await get(`${server}/readyz`, adminTls)).status === 200, 90_000);
    };
    apiserver.start();
    await waitApiReady();

    // ---- kube-controller-manager
    const kcm = new ManagedProcess(
      'kube-controller-manager',
      bins.kubeControllerManager,
      [
        `--kubeconfig=${adminKubeconfig}`,
        `--authentication-kubeconfig=${adminKubeconfig}`,
        `--authorization-kubeconfig=${adminKubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, 'kcm-certs')}`,
        '--leader-elect=false',
        // No kubelet renews the fake node's lease: without this the node-lifecycle controller
        // marks every pod NotReady after ~40 s and the taint-eviction controller evicts them.
        '--controllers=*,-node-lifecycle-controller,-taint-eviction-controller',
        `--service-account-private-key-file=${pki.saKey}`,
        `--root-ca-file=${pki.caFile}`,
        `--cluster-signing-cert-file=${pki.caFile}`,
        `--cluster-signing-key-file=${pki.caKeyFile}`,
        '--profiling=false',
      ],
      join(logsDir, 'kube-controller-manager.log'),
    );
    procs.push(kcm);
    kcm.start();
    await kcm.waitFor('kube-controller-manager /healthz', async () => (await get(`https://127.0.0.1:${kcmPort}/healthz`, { insecure: true })).status === 200, 60_000);

    const adminKubeConfig = (): KubeConfig => {
      const kc = new KubeConfig();
      kc.loadFromFile(adminKubeconfig);
      return kc;
    };
    // The serviceaccount controller is running once `default` has its ServiceAccount.
    const core = adminKubeConfig().makeApiClient(CoreV1Api);
    await kcm.waitFor('ServiceAccount default/default (controller-manager working)', async () => Boolean(await core.readNamespacedServiceAccount({ namespace: 'default', name: 'default' })), 60_000);

    let tokenCounter = 0;
    const plane: ControlPlane = {
      server,
      caFile: pki.caFile,
      caPem: pki.caPem,
      adminKubeconfig,
      logsDir,
      dir,
      etcdUrl,
      adminKubeConfig,
      apiServerRunning: () => apiserver.running,
      async kubeconfigFor(sa: { namespace: string; name: string }): Promise<string> {
        let token: string | undefined;
        try {
          const tr = await core.createNamespacedServiceAccountToken({
            namespace: sa.namespace,
            name: sa.name,
            body: { spec: { audiences: [], expirationSeconds: 24 * 3600 } },
          });
          token = tr.status?.token;
        } catch (err) {
          const code = err instanceof ApiException ? ` (HTTP ${err.code})` : '';
          throw new Error(`TokenRequest for ServiceAccount ${sa.namespace}/${sa.name} failed${code}: ${err instanceof Error ? err.message : String(err)}`);
        }
        if (!token) throw new Error(`TokenRequest for ServiceAccount ${sa.namespace}/${sa.name} returned no token`);
        const path = join(dir, `sa-${sa.namespace}-${sa.name}-${++tokenCounter}.kubeconfig`);
        writeFileSync(path, kubeconfigJson(server, pki.caPem, { token }, `${sa.namespace}-${sa.name}`), { mode: 0o600 });
        return path;
      },
      async stopApiServer(stopOpts: { signal?: 'SIGTERM' | 'SIGKILL'; graceMs?: number } = {}): Promise<void> {
        await apiserver.stop(stopOpts.signal ?? 'SIGTERM', stopOpts.graceMs ?? 2000);
      },
      async startApiServer(): Promise<void> {
        if (stopped) throw new Error('control plane was stopped');
        if (!apiserver.running) apiserver.start();
        await waitApiReady();
      },
      async stop(): Promise<void> {
        if (stopped) return;
        stopped = true;
        await stopAll();
      },
    };
    return plane;
  } catch (err) {
    stopped = true;
    await stopAll().catch(() => undefined);
    throw err;
  }
}
