// Probes over TLS against real nginx serving the shipped probe location with certificates from a
// test CA: a verifying chain is synced; a wrong CA, an expired certificate or a wrong name is an
// `error` naming why, never a silent success; a peer that requires a client certificate is an
// `error` without one and synced with one; rotated CA files are picked up without a restart.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort, waitForHttp } from './support/net.js';
import { DEBIAN_NGINX_MODULES, NGINX_BIN, PROBE_PATH, SNIPPETS_DIR, nginxMissing, writeToken } from './support/nginx.js';
import { TestCa } from './support/pki.js';
import { spawnTracked, type TrackedProcess } from './support/processes.js';
import { sendCheck, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { waitFor } from './support/wait.js';

const NET = '127.0.6.';
const NAME = 'apigw-peer.test';
const TOKEN = 'tls-token-SECRETMARK';

interface Peers {
  readonly port: number;
  /** name → address of each TLS peer; `writer` is plain http to the shared store. */
  readonly hosts: Readonly<Record<'good' | 'expired' | 'wrongca' | 'wrongname' | 'mtls', string>>;
  readonly writer: string;
  readonly ca: TestCa;
  readonly otherCa: TestCa;
  readonly client: { certFile: string; keyFile: string };
  readonly dir: string;
  readonly nginx: TrackedProcess;
}

async function startPeers(): Promise<Peers> {
  const dir = mkdtempSync(join(tmpdir(), 'apigw-tls-'));
  const [ca, otherCa] = await Promise.all([TestCa.create(join(dir, 'pki'), 'peers'), TestCa.create(join(dir, 'pki'), 'stranger')]);
  const [good, expired, wrongca, wrongname, client] = await Promise.all([
    ca.issue('good', { dns: [NAME] }),
    ca.issue('expired', { dns: [NAME], days: -1 }),
    otherCa.issue('wrongca', { dns: [NAME] }),
    ca.issue('wrongname', { dns: ['someone-else.test'] }),
    ca.issue('client', { client: true }),
  ]);
  const hosts = { good: `${NET}11`, expired: `${NET}12`, wrongca: `${NET}13`, wrongname: `${NET}14`, mtls: `${NET}15` } as const;
  const writer = `${NET}10`;
  const port = await freePort(writer);
  const tls = (host: string, cert: { certFile: string; keyFile: string }, extra = ''): string => `
    server {
        listen ${host}:${port} ssl;
        ssl_certificate ${cert.certFile};
        ssl_certificate_key ${cert.keyFile};
        ${extra}
        include apigw-syncer/oss/token-store-server.conf;
    }`;
  // One nginx, so one token store that every server reads: a write to the plain server is a
  // write to all. The apigw-syncer parts are the shipped files, through ./apigw-syncer.
  const conf = `daemon off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} info;
${DEBIAN_NGINX_MODULES.map((m) => `load_module ${m};`).join('\n')}
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path ${join(dir, 'client_body')};
    proxy_temp_path ${join(dir, 'proxy')};
    fastcgi_temp_path ${join(dir, 'fastcgi')};
    uwsgi_temp_path ${join(dir, 'uwsgi')};
    scgi_temp_path ${join(dir, 'scgi')};
    include apigw-syncer/common/http.conf;
    include apigw-syncer/oss/token-store-http.conf;
    # common/http.conf reads the verdict a policy's auth_request_set fills; no policy here.
    map "" $apigw_token_status_raw { default ""; }
    server {
        listen ${writer}:${port};
        include apigw-syncer/oss/token-store-server.conf;
    }
    ${tls(hosts.good, good)}
    ${tls(hosts.expired, expired)}
    ${tls(hosts.wrongca, wrongca)}
    ${tls(hosts.wrongname, wrongname)}
    ${tls(hosts.mtls, good, `ssl_verify_client on;\n        ssl_client_certificate ${ca.certFile};`)}
}
`;
  symlinkSync(SNIPPETS_DIR, join(dir, 'apigw-syncer'));
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const nginx = spawnTracked(NGINX_BIN, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    await waitForHttp(`http://${writer}:${port}${PROBE_PATH}`, { status: 401, timeoutMs: 10_000, intervalMs: 20, abortIf: () => (nginx.exitStatus() === undefined ? undefined : new Error('nginx exited')) });
  } catch (err) {
    await nginx.stop();
    const log = readFileSync(join(dir, 'error.log'), 'utf8').split('\n').slice(-5).join('\n');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  return { port, hosts, writer: `http://${writer}:${port}`, ca, otherCa, client, dir, nginx };
}

let peers: Peers;

t.before(async () => {
  const missing = nginxMissing();
  if (missing !== undefined) throw new Error(missing);
  peers = await startPeers();
  await writeToken(peers.writer, TOKEN);
});
t.teardown(async () => {
  await peers?.nginx.stop();
  if (peers) rmSync(peers.dir, { recursive: true, force: true });
});

function peersEnv(names: ReadonlyArray<keyof Peers['hosts']>): string {
  return names.map((n) => `${n}=${peers.hosts[n]}:${peers.port}`).join(',');
}

async function tlsSidecar(t: { teardown(fn: () => Promise<void>): void }, env: Record<string, string>, tlsReloadMs?: number): Promise<RunningSidecar> {
  const s = await startSidecar({ SYNCER_PROBE_SCHEME: 'https', SYNCER_PROBE_SERVERNAME: NAME, SYNCER_SYNCED_TTL_MS: '0', ...env }, undefined, tlsReloadMs === undefined ? {} : { tlsReloadMs });
  t.teardown(() => s.stop());
  return s;
}

type Reply = Awaited<ReturnType<typeof sendCheck>>;
const byName = (r: Reply) => Object.fromEntries((r.body.peers ?? []).map((p) => [p.name, [p.outcome, p.lastStatus, p.lastError]]));

t.test('a verifying chain is synced; every failure is an error that names why, at once', async (t) => {
  const s = await tlsSidecar(t, { SYNCER_PEERS: peersEnv(['good', 'expired', 'wrongca', 'wrongname', 'mtls']), SYNCER_PROBE_CA_FILE: peers.ca.certFile });
  const r = await sendCheck(s.apiUrl, { 'X-Auth-Token': TOKEN });
  t.equal(r.tokenStatus, 'NotSynced', 'one of five synced');
  t.same(byName(r), {
    good: ['synced', 200, null],
    expired: ['error', null, 'CERT_HAS_EXPIRED'],
    wrongca: ['error', null, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    wrongname: ['error', null, 'ERR_TLS_CERT_ALTNAME_INVALID'],
    // nginx asks for the certificate in the handshake and answers 400 without one.
    mtls: ['error', 400, null],
  });
  t.ok(
    (r.body.peers ?? []).filter((p) => p.outcome === 'error').every((p) => p.attempts === 1),
    'a certificate problem is not retried: it will not fix itself within a check',
  );
  t.ok(s.logs.some((l) => l.includes('"level":40') && l.includes('CERT_HAS_EXPIRED') && l.includes('"peer":"expired"')), 'a warn line names the peer and the TLS error');
  t.equal(s.logs.filter((l) => l.includes('SECRETMARK')).length, 0, 'the token is in no log line');
});

t.test('without SYNCER_PROBE_SERVERNAME the peer IP is verified, and fails', async (t) => {
  const s = await startSidecar({ SYNCER_PROBE_SCHEME: 'https', SYNCER_PROBE_CA_FILE: peers.ca.certFile, SYNCER_PEERS: peersEnv(['good']), SYNCER_SYNCED_TTL_MS: '0' });
  t.teardown(() => s.stop());
  const r = await sendCheck(s.apiUrl, { 'X-Auth-Token': TOKEN });
  t.same(byName(r), { good: ['error', null, 'ERR_TLS_CERT_ALTNAME_INVALID'] }, 'the certificate names apigw-peer.test, not 127.0.6.11');
});

t.test('mTLS: with the client certificate the peer that requires one is synced', async (t) => {
  const s = await tlsSidecar(t, {
    SYNCER_PEERS: peersEnv(['good', 'mtls']),
    SYNCER_PROBE_CA_FILE: peers.ca.certFile,
    SYNCER_PROBE_CERT_FILE: peers.client.certFile,
    SYNCER_PROBE_KEY_FILE: peers.client.keyFile,
  });
  const r = await sendCheck(s.apiUrl, { 'X-Auth-Token': TOKEN });
  t.equal(r.tokenStatus, 'Synced');
  t.same(byName(r), { good: ['synced', 200, null], mtls: ['synced', 200, null] });
});

t.test('a rotated CA file is picked up without a restart', async (t) => {
  const caFile = join(peers.dir, 'rotating-ca.crt');
  copyFileSync(peers.otherCa.certFile, caFile);
  const s = await tlsSidecar(t, { SYNCER_PEERS: peersEnv(['good']), SYNCER_PROBE_CA_FILE: caFile }, 50);
  const before = await sendCheck(s.apiUrl, { 'X-Auth-Token': TOKEN });
  t.same(byName(before), { good: ['error', null, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'] }, 'the wrong CA at first');
  copyFileSync(peers.ca.certFile, caFile);
  await waitFor(() => s.logs.some((l) => l.includes('TLS files changed')), 'the sidecar to reload the CA');
  const after = await sendCheck(s.apiUrl, { 'X-Auth-Token': TOKEN });
  t.same(byName(after), { good: ['synced', 200, null] }, 'the right CA after the rotation');
});

t.test('unusable TLS files stop the start with a message naming the file', async (t) => {
  const bad = join(peers.dir, 'not-a-cert.pem');
  writeFileSync(bad, 'not a certificate\n');
  await t.rejects(
    startSidecar({ SYNCER_PROBE_SCHEME: 'https', SYNCER_PROBE_CA_FILE: bad, SYNCER_PEERS: peersEnv(['good']) }),
    /TLS material is not usable \(.*not-a-cert\.pem/,
  );
  await t.rejects(startSidecar({ SYNCER_PROBE_SCHEME: 'https', SYNCER_PROBE_CA_FILE: join(peers.dir, 'absent.pem'), SYNCER_PEERS: peersEnv(['good']) }), /cannot read SYNCER_PROBE_CA_FILE .*absent\.pem: ENOENT/);
});
