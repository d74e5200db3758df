// Probes over TLS against real nginx serving the shipped probe location with certificates from a
// test CA: a verifying chain is synced; a wrong CA, an expired certificate or a wrong name is an
// `error` naming why, never a silent success; a peer that requires a client certificate is an
// `error` without one and synced with one; rotated CA files are picked up without a restart.
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { freePort, waitForHttp } from './support/net.js';
import { DEBIAN_NGINX_MODULES, SNIPPETS_DIR, httpPaths, keyvalsUrl, makePrefixDir, nginxMissing, standaloneMain, startNginx, writeToken, type RunningNginx } from './support/nginx.js';
import { sendCheck, startSidecar, type RunningSidecar } from './support/sidecar-app.js';
import { issueCert, makeCa } from './support/tls-certs.js';
import { waitFor } from './support/wait.js';
import { requirePart } from './support/required.js';

const NET = '127.0.6.';
const NAME = 'apigw-peer.test';
const TOKEN = 'tls-token-SECRETMARK';

type PeerName = 'good' | 'expired' | 'wrongca' | 'wrongname' | 'mtls';

interface Peers {
  readonly port: number;
  /** Each TLS peer's address. */
  readonly hosts: Readonly<Record<PeerName, string>>;
  /** The shared store's token API (plain http on loopback). */
  readonly apiUrl: string;
  /** The CA that signs the peers' certificates, and one that signs nothing they trust. */
  readonly caFile: string;
  readonly strangerCaFile: string;
  /** A client certificate from the peers' CA. */
  readonly client: { readonly certFile: string; readonly keyFile: string };
  readonly dir: string;
  readonly nginx: RunningNginx;
}

async function startPeers(): Promise<Peers> {
  const dir = await makePrefixDir('tls');
  const pki = join(dir, 'pki');
  const [ca, stranger] = await Promise.all([makeCa(join(pki, 'ca'), 'peers'), makeCa(join(pki, 'stranger'), 'stranger')]);
  const [good, expired, wrongca, wrongname, client] = await Promise.all([
    issueCert(ca, join(pki, 'good'), [NAME]),
    issueCert(ca, join(pki, 'expired'), [NAME], -1),
    issueCert(stranger, join(pki, 'wrongca'), [NAME]),
    issueCert(ca, join(pki, 'wrongname'), ['someone-else.test']),
    issueCert(ca, join(pki, 'client'), ['client.test']),
  ]);
  const hosts = { good: `${NET}11`, expired: `${NET}12`, wrongca: `${NET}13`, wrongname: `${NET}14`, mtls: `${NET}15` } as const;
  const port = await freePort(hosts.good);
  const apiPort = await freePort();
  const tls = (host: string, certDir: string, extra = ''): string => `
    server {
        listen ${host}:${port} ssl;
        ssl_certificate ${join(certDir, 'tls.crt')};
        ssl_certificate_key ${join(certDir, 'tls.key')};
        ${extra}
        include apigw-syncer/oss/token-store-probe.conf;
    }`;
  // One nginx, so one token store that every probe server reads: a write to the API is a write
  // to all. The apigw-syncer parts are the shipped files, through ./apigw-syncer.
  const conf = `${standaloneMain(dir, DEBIAN_NGINX_MODULES)}
http {
${httpPaths(dir)}
    include apigw-syncer/common/http.conf;
    include apigw-syncer/oss/token-store-http.conf;
    # common/http.conf reads the verdict a policy's auth_request_set fills; no policy here.
    map "" $apigw_token_status_raw { default ""; }
    geo $apigw_probe_denied { default 1; 127.0.0.0/8 0; }
    server {
        listen 127.0.0.1:${apiPort};
        include apigw-syncer/oss/token-store-api.conf;
    }
    ${tls(hosts.good, good)}
    ${tls(hosts.expired, expired)}
    ${tls(hosts.wrongca, wrongca)}
    ${tls(hosts.wrongname, wrongname)}
    ${tls(hosts.mtls, good, `ssl_verify_client on;\n        ssl_client_certificate ${ca.crt};`)}
}
`;
  await symlink(SNIPPETS_DIR, join(dir, 'apigw-syncer'));
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const nginx = await startNginx('tls-peers', dir, confPath, (abortIf) => waitForHttp(keyvalsUrl(apiUrl), { timeoutMs: 10_000, intervalMs: 20, abortIf }));
  return {
    port,
    hosts,
    apiUrl,
    caFile: ca.crt,
    strangerCaFile: stranger.crt,
    client: { certFile: join(client, 'tls.crt'), keyFile: join(client, 'tls.key') },
    dir,
    nginx,
  };
}

let peers: Peers;

t.before(async () => {
  requirePart(nginxMissing());
  peers = await startPeers();
  await writeToken(peers.apiUrl, TOKEN);
});
t.teardown(async () => {
  await peers?.nginx.stop();
  if (peers) rmSync(peers.dir, { recursive: true, force: true });
});

function peersEnv(names: readonly PeerName[]): string {
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
  const s = await tlsSidecar(t, { SYNCER_PEERS: peersEnv(['good', 'expired', 'wrongca', 'wrongname', 'mtls']), SYNCER_PROBE_CA_FILE: peers.caFile });
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
  const s = await startSidecar({ SYNCER_PROBE_SCHEME: 'https', SYNCER_PROBE_CA_FILE: peers.caFile, SYNCER_PEERS: peersEnv(['good']), SYNCER_SYNCED_TTL_MS: '0' });
  t.teardown(() => s.stop());
  const r = await sendCheck(s.apiUrl, { 'X-Auth-Token': TOKEN });
  t.same(byName(r), { good: ['error', null, 'ERR_TLS_CERT_ALTNAME_INVALID'] }, 'the certificate names apigw-peer.test, not 127.0.6.11');
});

t.test('mTLS: with the client certificate the peer that requires one is synced', async (t) => {
  const s = await tlsSidecar(t, {
    SYNCER_PEERS: peersEnv(['good', 'mtls']),
    SYNCER_PROBE_CA_FILE: peers.caFile,
    SYNCER_PROBE_CERT_FILE: peers.client.certFile,
    SYNCER_PROBE_KEY_FILE: peers.client.keyFile,
  });
  const r = await sendCheck(s.apiUrl, { 'X-Auth-Token': TOKEN });
  t.equal(r.tokenStatus, 'Synced');
  t.same(byName(r), { good: ['synced', 200, null], mtls: ['synced', 200, null] });
});

t.test('a rotated CA file is picked up without a restart', async (t) => {
  const caFile = join(peers.dir, 'rotating-ca.crt');
  copyFileSync(peers.strangerCaFile, caFile);
  const s = await tlsSidecar(t, { SYNCER_PEERS: peersEnv(['good']), SYNCER_PROBE_CA_FILE: caFile }, 50);
  const before = await sendCheck(s.apiUrl, { 'X-Auth-Token': TOKEN });
  t.same(byName(before), { good: ['error', null, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'] }, 'the wrong CA at first');
  copyFileSync(peers.caFile, caFile);
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
