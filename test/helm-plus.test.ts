// The chart's NGINX Plus flavor. Plus itself cannot run here, so this proves what can be:
//  1. the values: an NGINX Plus image is required (schema), the license must be mounted where
//     the config points and nothing may mount over the chart's certificates (render-time
//     checks), helm lint;
//  2. the rendered pod and nginx.conf: mgmt block with a writable state_path, zone_sync over
//     mutual TLS by default (the chart's certificates) from the pod network only, listeners of
//     every configured family, the probe port for peers only, the token API on loopback;
//  3. lockstep: the chart's stream block and mgmt block use the same directives as the
//     hand-written example (nginx-snippets/plus/zone-sync-stream.conf, plus/nginx.conf);
//  4. the default render's zone_sync server's TLS and access rules on real nginx: open-source nginx's
//     stream module has the same listen/allow/deny/ssl_* directives, and its proxy_ssl_* twins
//     of the zone_sync_ssl_* client directives check the peer the same way.
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Service } from '@kubernetes/client-node';
import { CHART_DIR, INSTALL_SET, helmTemplate, kubeVersion, render, runHelm, type KubeObject } from './packaging/helm.js';
import { allContainers, envVar, ofKind, only, podSpec } from './packaging/k8s-objects.js';
import { PLUS_LICENSE_DIR, plusValues, type PlusNginxValues } from './packaging/plus-values.js';
import { freePort } from './support/net.js';
import { DEBIAN_STREAM_MODULE, SNIPPETS_DIR, makePrefixDir, nginxMissing, standaloneMain, startNginx, type RunningNginx } from './support/nginx.js';
import { blockLines, directiveArgs, directiveNames, httpServers, inlineSnippets, meaningfulLines } from './support/nginx-conf.js';
import { issueCert, makeCa, makeIntermediateCa } from './support/tls-certs.js';
import { waitFor } from './support/wait.js';
import { requirePart } from './support/required.js';
import { stringify } from 'yaml';

const FQDN = 'apigw-apigw-syncer-peers.apigw.svc.cluster.local';
/** The chart's default tls.mountPath: the server certificate in server/, the client one in client/. */
const TLS_DIR = '/etc/apigw-tls';
const PEER_SOURCES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'];

/** Plus as installed by default (zone_sync over mutual TLS), on both address families, its certificates mounted under `tls.mountPath`. */
function tlsValues(nginx: PlusNginxValues = {}, tls: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...plusValues({ ipFamilies: ['IPv4', 'IPv6'], ...nginx }), tls: { mountPath: TLS_DIR, ...tls } };
}

function nginxConfLines(objects: readonly KubeObject[]): string[] {
  const conf = only(objects, 'ConfigMap').data?.['nginx.conf'];
  if (conf === undefined) throw new Error('no nginx.conf in the ConfigMap');
  return meaningfulLines(conf);
}

/** The lines of the stream server, shared snippets inlined. */
function streamServer(lines: readonly string[]): string[] {
  return blockLines(inlineSnippets(blockLines(lines, 'stream {'), SNIPPETS_DIR), 'server {');
}

function servicePorts(s: V1Service | undefined): Record<string, number> {
  return Object.fromEntries((s?.spec?.ports ?? []).map((p) => [p.name ?? '', p.port]));
}

// ---- values --------------------------------------------------------------------------------

t.test('helm lint --strict passes for the Plus value combinations', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'apigw-plus-lint-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const combos: Record<string, Record<string, unknown>> = {
    'plus, license mounted': plusValues(),
    'plus + mutual TLS + dual stack': tlsValues(),
    'plus + dns + ServiceMonitor': { ...plusValues(), syncer: { discovery: 'dns' }, metrics: { serviceMonitor: { enabled: true } } },
    'plus before R33 (no mgmt, no license)': { nginx: { flavor: 'plus', plus: { image: { repository: 'registry.example.com/nginx-plus', tag: 'r32' }, mgmt: { enabled: false } } } },
  };
  for (const [name, values] of Object.entries(combos)) {
    const file = join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
    writeFileSync(file, stringify(values));
    const r = await runHelm(['lint', '--strict', CHART_DIR, '--kube-version', kubeVersion(), ...INSTALL_SET, '--values', file]);
    t.equal(r.code, 0, `lint --strict (${name}): ${r.stdout}${r.stderr}`);
  }
});

t.test('Plus needs its own image, the license mounted where the config points, and its certificates left alone', async (t) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['flavor plus without an NGINX Plus image', { nginx: { flavor: 'plus' } }, /at '\/nginx\/plus': missing property 'image'/],
    [
      'license.jwt not mounted',
      { nginx: { flavor: 'plus', plus: { image: { repository: 'registry.example.com/nginx-plus', tag: 'r35' } } } },
      /nginx\.plus\.mgmt\.licenseToken \(\/etc\/apigw-plus\/license\/license\.jwt\) is not in any nginx\.extraVolumeMounts: mount the Secret holding license\.jwt there/,
    ],
    [
      'a mount over the certificates',
      plusValues({ extraVolumes: [{ name: 'x', emptyDir: {} }], extraVolumeMounts: [{ name: 'x', mountPath: '/etc/apigw-tls/client' }] }),
      /\/etc\/apigw-tls\/client is already used by tls-client/,
    ],
    ['a volume named like the certificates', plusValues({ extraVolumes: [{ name: 'tls-server', emptyDir: {} }] }), /the volume name "tls-server" is taken \(by the chart \(tls\)\)/],
    ['the old zone_sync TLS switch', plusValues({ plus: { zoneSyncTls: { enabled: true } } }), /at '\/nginx\/plus': additional properties 'zoneSyncTls' not allowed/],
    ['a mount of a volume that is not there', plusValues({ extraVolumeMounts: [{ name: 'nope', mountPath: '/x' }] }), /\/x mounts volume "nope", which is not in nginx\.extraVolumes/],
    ['a volume named like the chart\'s', plusValues({ extraVolumes: [{ name: 'run', emptyDir: {} }] }), /the volume name "run" is taken \(by the chart\)/],
    [
      'the proxy credentials not mounted',
      plusValues({ plus: { mgmt: { proxy: 'proxy.internal:3128', proxyCredentialsFile: '/etc/apigw-plus/proxy/credentials.conf' } } }),
      /nginx\.plus\.mgmt\.proxyCredentialsFile \(\/etc\/apigw-plus\/proxy\/credentials\.conf\) is not in any nginx\.extraVolumeMounts/,
    ],
    [
      "the report endpoint's CA not mounted",
      plusValues({ plus: { mgmt: { usageReportEndpoint: 'nim.internal', sslTrustedCertificate: '/etc/apigw-plus/nim-ca/ca.crt' } } }),
      /nginx\.plus\.mgmt\.sslTrustedCertificate \(\/etc\/apigw-plus\/nim-ca\/ca\.crt\) is not in any nginx\.extraVolumeMounts/,
    ],
    [
      'proxy credentials without a proxy',
      plusValues({ extraVolumes: [{ name: 'p', secret: { secretName: 'p' } }], extraVolumeMounts: [{ name: 'p', mountPath: '/etc/p' }], plus: { mgmt: { proxyCredentialsFile: '/etc/p/c.conf' } } }),
      /nginx\.plus\.mgmt\.proxyCredentialsFile is set without nginx\.plus\.mgmt\.proxy/,
    ],
    ['a proxy that is not host:port', plusValues({ plus: { mgmt: { proxy: 'proxy:3128; ssl_verify off' } } }), /at '\/nginx\/plus\/mgmt\/proxy': 'proxy:3128; ssl_verify off' does not match pattern/],
    ['a verify depth of 0', tlsValues({}, { verifyDepth: 0 }), /at '\/tls\/verifyDepth': minimum: got 0, want 1/],
    ['a hostPath volume', plusValues({ extraVolumes: [{ name: 'host', hostPath: { path: '/' } }] }), /extraVolumes\/\d+': additional properties 'hostPath' not allowed/],
    ['an unknown address family', { nginx: { ipFamilies: ['IPv5'] } }, /ipFamilies[\s\S]*(IPv4|enum|value must be)/],
    ['a peer source that is not an address', { nginx: { peerSources: ['10.0.0.0/8; allow all'] } }, /peerSources[\s\S]*(pattern|match)/],
    ['the probe port on the client port', { nginx: { probePort: 8000 } }, /nginx\.probePort uses port 8000, already used by nginx\.port/],
    ['the token API on the sidecar\'s port', { nginx: { apiPort: 8080 } }, /syncer\.config\.listenAddr uses port 8080, already used by nginx\.apiPort/],
  ];
  for (const [name, values, message] of cases) {
    const r = await helmTemplate({ values });
    t.not(r.code, 0, `${name}: rejected`);
    t.match(r.stderr, message, `${name}: clear message`);
    t.comment(`${name} → ${r.stderr.split('\n').slice(0, 4).join(' | ')}`);
  }
});

// ---- the rendered pod and nginx.conf -------------------------------------------------------

t.test('the Plus pod: the Plus image, license and state volumes, the probe port for peers only', async (t) => {
  const objects = await render({ values: tlsValues() });
  const nginx = allContainers(podSpec(objects)).get('nginx')?.container;
  t.equal(nginx?.image, 'registry.example.com/nginx-plus:r35', 'nginx.plus.image, not the open-source default');
  t.same(
    (nginx?.ports ?? []).map((p) => [p.name, p.containerPort]),
    [
      ['http', 8000],
      ['probe', 8001],
      ['zone-sync', 12345],
    ],
  );
  t.same(
    (nginx?.volumeMounts ?? []).map((m) => [m.name, m.mountPath]),
    [
      ['nginx-config', '/etc/apigw'],
      ['run', '/run/apigw-syncer'],
      ['tls-server', `${TLS_DIR}/server`],
      ['tls-client', `${TLS_DIR}/client`],
      ['mgmt-state', '/var/lib/nginx/state'],
      ['plus-license', PLUS_LICENSE_DIR],
    ],
    "the chart's certificates (zone_sync's listener, its connections out); license state on its own writable emptyDir; the license from nginx.extraVolumeMounts",
  );
  const volumes = podSpec(objects).volumes ?? [];
  t.same(volumes.find((v) => v.name === 'mgmt-state')?.emptyDir, { sizeLimit: '8Mi' });
  t.same(volumes.find((v) => v.name === 'tls-server')?.secret, { secretName: 'apigw-apigw-syncer-tls-server', defaultMode: 0o444 });
  t.same(
    volumes.filter((v) => v.name === 'tls-client').map((v) => v.secret),
    [{ secretName: 'apigw-apigw-syncer-tls-client', defaultMode: 0o444 }],
    'the client certificate: one volume, shared by nginx (zone_sync) and the syncer (probes)',
  );
  t.equal(nginx?.securityContext?.readOnlyRootFilesystem, true, 'the root filesystem stays read-only');
  const services = ofKind(objects, 'Service');
  t.same(servicePorts(services.find((s) => s.spec?.clusterIP !== 'None')), { http: 80 }, 'the client Service exposes the client port only');
  t.same(servicePorts(services.find((s) => s.spec?.clusterIP === 'None')), { http: 8000, probe: 8001, 'zone-sync': 12345, ops: 9090 }, 'the headless peer Service lists probe and zone_sync');
  const syncer = allContainers(podSpec(objects)).get('syncer')?.container;
  t.equal(syncer && envVar(syncer, 'SYNCER_PROBE_PORT')?.value, '8001', 'the sidecars probe the probe server');

  const oss = await render();
  const ossNginx = allContainers(podSpec(oss)).get('nginx')?.container;
  t.match(ossNginx?.image, /^openresty\/openresty:/, 'the oss flavor keeps its own image');
  t.notOk((ossNginx?.volumeMounts ?? []).some((m) => m.name === 'mgmt-state'), 'no license state without Plus');
});

t.test('nginx.conf for Plus: mgmt, zone_sync over mutual TLS from the pod network, three servers', async (t) => {
  const lines = nginxConfLines(await render({ values: tlsValues() }));
  t.same(blockLines(lines, 'mgmt {'), ['license_token /etc/apigw-plus/license/license.jwt;', 'state_path /var/lib/nginx/state;'], 'mgmt: license from the mount, state on the emptyDir');

  const stream = blockLines(lines, 'stream {');
  t.ok(stream.includes('resolver kube-dns.kube-system.svc.cluster.local valid=5s;'), 'resolver: the cluster DNS by name');
  const server = streamServer(lines);
  t.same(directiveArgs(server, 'listen'), [['12345', 'ssl'], ['[::]:12345', 'ssl']], 'zone_sync listens on both families, with TLS');
  t.same(
    directiveArgs(server, 'allow').map((a) => a[0]),
    PEER_SOURCES,
    'allow: nginx.peerSources',
  );
  t.equal(server[server.indexOf('allow fc00::/7;') + 1], 'deny all;', 'then deny all: no loopback');
  t.ok(server.includes(`zone_sync_server ${FQDN}:12345 resolve;`), 'every replica through the headless Service');
  t.same(directiveArgs(server, 'zone_sync_buffers'), [['8', '16k']], 'buffers for the largest entry');
  for (const [name, file] of [
    ['ssl_certificate', 'server/tls.crt'],
    ['ssl_certificate_key', 'server/tls.key'],
    ['ssl_client_certificate', 'server/ca.crt'],
    ['zone_sync_ssl_certificate', 'client/tls.crt'],
    ['zone_sync_ssl_certificate_key', 'client/tls.key'],
    ['zone_sync_ssl_trusted_certificate', 'client/ca.crt'],
  ] as const) {
    t.same(directiveArgs(server, name), [[`${TLS_DIR}/${file}`]], `${name} from the mounted Secret`);
  }
  for (const on of ['ssl_verify_client on;', 'zone_sync_ssl on;', 'zone_sync_ssl_verify on;']) t.ok(server.includes(on), on);
  t.same(directiveArgs(server, 'zone_sync_ssl_name'), [[FQDN]], 'peers checked by the Service name, not the resolved IP');

  const [probe, api, clients] = httpServers(lines);
  t.same(directiveArgs(probe ?? [], 'listen'), [['8001', 'ssl'], ['[::]:8001', 'ssl']], 'probe server on both families, with TLS');
  t.same(directiveArgs(probe ?? [], 'ssl_client_certificate'), [[`${TLS_DIR}/server/ca.crt`]], 'probe server: the CA of the sidecars\' client certificates');
  t.ok(probe?.includes('include apigw-syncer/plus/token-store-probe.conf;'), 'probe server: the keyval lookup');
  t.same(directiveArgs(api ?? [], 'listen'), [['127.0.0.1:8002'], ['[::1]:8002']], 'token API on loopback only');
  t.ok(api?.includes('include apigw-syncer/plus/token-store-api.conf;'), 'token API: api write=on');
  t.same(directiveArgs(clients ?? [], 'listen'), [['8000'], ['[::]:8000']], 'client server on both families');
  t.same(directiveArgs(clients ?? [], 'large_client_header_buffers'), [['4', '16k']], 'client server takes 8 KiB tokens');
  t.same(blockLines(lines, 'geo $apigw_probe_denied {'), ['default 1;', ...PEER_SOURCES.map((s) => `${s} 0;`)], 'probe sources: nginx.peerSources');
});

t.test('nginx.conf for Plus: what the values change', async (t) => {
  const conf = async (values: Record<string, unknown>, release = 'apigw', namespace = 'apigw'): Promise<string[]> => nginxConfLines(await render({ release, namespace, values }));

  const edge = streamServer(await conf(tlsValues(), 'gw', 'edge'));
  t.ok(edge.includes('zone_sync_server gw-apigw-syncer-peers.edge.svc.cluster.local:12345 resolve;'), "this release's Service");
  t.ok(edge.includes('zone_sync_ssl_name gw-apigw-syncer-peers.edge.svc.cluster.local;'), 'and its name in the certificate check');
  const named = streamServer(await conf(tlsValues({}, { serverName: 'zone-sync.apigw.internal' })));
  t.same(directiveArgs(named, 'zone_sync_ssl_name'), [['zone-sync.apigw.internal']], 'tls.serverName overrides the checked name');
  t.ok(blockLines(await conf({ ...plusValues(), ocp4: true }), 'stream {').includes('resolver dns-default.openshift-dns.svc.cluster.local valid=5s;'), 'OpenShift DNS under ocp4');

  t.same(directiveArgs(streamServer(await conf(plusValues())), 'listen'), [['12345', 'ssl']], 'the defaults: IPv4, TLS');
  const plain = streamServer(await conf({ ...plusValues(), tls: { enabled: false } }));
  t.same(directiveArgs(plain, 'listen'), [['12345']], 'tls.enabled=false, IPv4 only: a plain listener');
  t.notOk(plain.some((l) => /^(ssl_|zone_sync_ssl)/.test(l)), 'no TLS directives');
  t.ok(plain.includes('deny all;'), 'the pod-network rule stays');

  const loopback = streamServer(await conf(plusValues({ allowLoopbackPeers: true })));
  t.same(directiveArgs(loopback, 'allow').map((a) => a[0]), [...PEER_SOURCES, '127.0.0.0/8', '::1'], 'nginx.allowLoopbackPeers: loopback joins the pod network (a mesh that forwards from it)');

  const v6 = await conf(plusValues({ ipFamilies: ['IPv6'], peerSources: ['fd00:10::/56'] }));
  t.same(directiveArgs(streamServer(v6), 'listen'), [['[::]:12345', 'ssl']], 'IPv6-only: zone_sync on [::]');
  t.same(directiveArgs(streamServer(v6), 'allow'), [['fd00:10::/56']]);
  const [probeV6, apiV6, clientsV6] = httpServers(v6);
  t.same(directiveArgs(probeV6 ?? [], 'listen'), [['[::]:8001', 'ssl']]);
  t.same(directiveArgs(apiV6 ?? [], 'listen'), [['127.0.0.1:8002'], ['[::1]:8002']], 'token API on both loopbacks');
  t.same(directiveArgs(clientsV6 ?? [], 'listen'), [['[::]:8000']]);

  const nim = await conf(plusValues({ plus: { mgmt: { usageReportEndpoint: 'nim.example.com:443', enforceInitialReport: false } } }));
  t.same(blockLines(nim, 'mgmt {').slice(2), ['usage_report endpoint=nim.example.com:443;', 'enforce_initial_report off;'], 'report to NGINX Instance Manager, with the grace period');
  const old = await conf({ nginx: { flavor: 'plus', plus: { image: { repository: 'registry.example.com/nginx-plus', tag: 'r32' }, mgmt: { enabled: false } } } });
  t.notOk(old.includes('mgmt {'), 'no mgmt block before R33');

  // Real egress: a CONNECT proxy with credentials from a Secret, NGINX Instance Manager on a private CA.
  const egress = plusValues({
    extraVolumes: [
      { name: 'mgmt-proxy', secret: { secretName: 'mgmt-proxy' } },
      { name: 'nim-ca', configMap: { name: 'nim-ca' } },
    ],
    extraVolumeMounts: [
      { name: 'mgmt-proxy', mountPath: '/etc/apigw-plus/mgmt-proxy', readOnly: true },
      { name: 'nim-ca', mountPath: '/etc/apigw-plus/nim-ca', readOnly: true },
    ],
    plus: {
      mgmt: {
        usageReportEndpoint: 'nim.internal.example:443',
        proxy: 'proxy.internal.example:3128',
        proxyCredentialsFile: '/etc/apigw-plus/mgmt-proxy/credentials.conf',
        sslTrustedCertificate: '/etc/apigw-plus/nim-ca/ca.crt',
      },
    },
  });
  const egressObjects = await render({ values: egress });
  t.same(
    blockLines(nginxConfLines(egressObjects), 'mgmt {'),
    [
      'license_token /etc/apigw-plus/license/license.jwt;',
      'state_path /var/lib/nginx/state;',
      'usage_report endpoint=nim.internal.example:443;',
      'proxy proxy.internal.example:3128;',
      'include /etc/apigw-plus/mgmt-proxy/credentials.conf;',
      'ssl_trusted_certificate /etc/apigw-plus/nim-ca/ca.crt;',
    ],
    'mgmt: the report through the proxy, its credentials from the mounted Secret, the endpoint checked against its CA',
  );
  t.notMatch(only(egressObjects, 'ConfigMap').data?.['nginx.conf'] ?? '', /proxy_password/, 'no proxy password in the ConfigMap');
  const unverified = await conf(plusValues({ plus: { mgmt: { sslVerify: false } } }));
  t.same(blockLines(unverified, 'mgmt {').slice(2), ['ssl_verify off;'], 'sslVerify: false → ssl_verify off');

  // The state directory on a volume of the user's: the chart's emptyDir gives way.
  const persistent = await render({
    values: plusValues({ extraVolumes: [{ name: 'mgmt-state', persistentVolumeClaim: { claimName: 'apigw-mgmt-state' } }], extraVolumeMounts: [{ name: 'mgmt-state', mountPath: '/var/lib/nginx/state' }] }),
  });
  const persistentSpec = podSpec(persistent);
  t.same(
    (persistentSpec.volumes ?? []).filter((v) => v.name === 'mgmt-state'),
    [{ name: 'mgmt-state', persistentVolumeClaim: { claimName: 'apigw-mgmt-state' } }],
    "statePath mounted by the user: their volume, not the chart's emptyDir",
  );
  t.same(
    (allContainers(persistentSpec).get('nginx')?.container.volumeMounts ?? []).filter((m) => m.mountPath === '/var/lib/nginx/state'),
    [{ name: 'mgmt-state', mountPath: '/var/lib/nginx/state' }],
    'mounted once, at statePath',
  );

  const depth = (lines: string[]): string[][] => [...directiveArgs(streamServer(lines), 'ssl_verify_depth'), ...directiveArgs(streamServer(lines), 'zone_sync_ssl_verify_depth')];
  t.same(depth(await conf(tlsValues())), [['1'], ['1']], "verify depth: nginx's default, 1, both ways");
  t.same(depth(await conf(tlsValues({}, { verifyDepth: 2 }))), [['2'], ['2']], '2 for an intermediate CA');
  const probeDepth = async (values: Record<string, unknown>): Promise<string[][]> => directiveArgs(httpServers(await conf(values))[0] ?? [], 'ssl_verify_depth');
  t.same(await probeDepth(tlsValues({}, { verifyDepth: 2 })), [['2']], "the probe server takes the same depth for the sidecars' client certificates");
});

t.test('the chart and the hand-written example use the same zone_sync and mgmt directives', async (t) => {
  const chart = nginxConfLines(await render({ values: tlsValues() }));
  const example = meaningfulLines(readFileSync(join(SNIPPETS_DIR, 'plus', 'nginx.conf'), 'utf8'));
  const exampleStream = meaningfulLines(readFileSync(join(SNIPPETS_DIR, 'plus', 'zone-sync-stream.conf'), 'utf8'));
  const sorted = (names: string[]): string[] => [...names].sort();
  t.same(sorted(directiveNames(streamServer(chart))), sorted(directiveNames(streamServer(exampleStream))), 'stream server: the same directives, as often');
  t.same(sorted(directiveNames(blockLines(chart, 'stream {')).filter((n) => n !== 'server')), sorted(directiveNames(blockLines(exampleStream, 'stream {')).filter((n) => n !== 'server')), 'stream{} level');
  t.same(directiveNames(blockLines(chart, 'mgmt {')), directiveNames(blockLines(example, 'mgmt {')), 'mgmt{}');
  t.same(directiveArgs(streamServer(chart), 'allow'), directiveArgs(streamServer(exampleStream), 'allow'), 'the default peer sources are the example\'s');
  t.same(blockLines(chart, 'geo $apigw_probe_denied {'), blockLines(example, 'geo $apigw_probe_denied {'), 'and so are the default probe sources');
});

// ---- the zone_sync server's TLS and access rules on real nginx -----------------------------

/** What a TLS client gets from `port` (connecting from `localAddress`): the bytes the server sent before closing, or the error. */
function tlsExchange(opts: { port: number; localAddress: string; cert?: string; key?: string; ca: string; servername: string }): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const done = (why: string): void => resolve(data === '' ? why : data);
    // tls.connect has no localAddress: the TCP connection is made first, from that address.
    const tcp = netConnect({ host: '127.0.5.1', port: opts.port, localAddress: opts.localAddress });
    const socket = tlsConnect({
      socket: tcp,
      servername: opts.servername,
      ca: readFileSync(opts.ca),
      ...(opts.cert !== undefined && opts.key !== undefined ? { cert: readFileSync(opts.cert), key: readFileSync(opts.key) } : {}),
    });
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (data += c));
    for (const s of [tcp, socket]) s.on('error', (err: NodeJS.ErrnoException) => done(`error: ${err.code ?? err.message}`));
    socket.on('close', () => done('closed'));
  });
}

/**
 * The rendered zone_sync server as open-source nginx's stream module can play it. zone_sync
 * itself is Plus-only: the server side keeps the rest (listen, allow/deny, ssl_*) and answers
 * "synced" instead; the zone_sync_ssl_* client directives become the stream proxy's proxy_ssl_*
 * twins, for a server that proxies to it as this replica's outgoing connection.
 */
function playedSides(rendered: readonly string[]): { serverSide: string[]; clientSide: string[] } {
  return {
    serverSide: rendered.filter((l) => !/^zone_sync(_buffers|_server|;)/.test(l) && !l.startsWith('zone_sync_ssl')),
    clientSide: rendered.filter((l) => l.startsWith('zone_sync_ssl')).map((l) => l.replace(/^zone_sync_ssl/, 'proxy_ssl')),
  };
}

/** Lines indented into a server{} block of a test config. */
function block(lines: readonly string[]): string {
  return lines.map((l) => `        ${l}`).join('\n');
}

/** A stream server{} of those lines that answers "synced" where zone_sync would sync. */
function syncedServer(lines: readonly string[]): string {
  return `    server {\n${block(lines)}\n        return "synced\\n";\n    }`;
}

/** Starts a test nginx with the stream module and these stream{} servers; resolves once `port` (one of theirs) accepts connections. */
async function startStreamNginx(t: Test, name: string, servers: string, port: number): Promise<RunningNginx> {
  const prefix = await makePrefixDir(name);
  t.teardown(() => rmSync(prefix, { recursive: true, force: true }));
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, `${standaloneMain(prefix, [DEBIAN_STREAM_MODULE])}\nstream {\n${servers}\n}\n`);
  const nginx = await startNginx(name, prefix, conf, (abortIf) =>
    waitFor(async () => (await tcpExchange(port)) !== 'error: ECONNREFUSED', `${name} on 127.0.5.1:${port}`, { timeoutMs: 10_000, intervalMs: 20, abortIf }),
  );
  t.teardown(() => nginx.stop());
  return nginx;
}

/** What a plain TCP client gets from `port` before the server closes. */
function tcpExchange(port: number): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const socket = netConnect({ host: '127.0.5.1', port });
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (data += c));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(data === '' ? `error: ${err.code ?? err.message}` : data));
    socket.on('close', () => resolve(data === '' ? 'closed' : data));
  });
}

t.test("the default render's zone_sync server: its mutual TLS and pod-network rule hold on real nginx (stream module)", async (t) => {
  requirePart(nginxMissing());
  const dir = mkdtempSync(join(tmpdir(), 'apigw-zone-sync-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The cluster's CA and the two certificates every replica mounts under tls.mountPath (the
  // server one names the peer Service), a certificate from the same CA without that name, and
  // one from another CA.
  const ca = await makeCa(join(dir, 'ca'), 'apigw zone_sync CA');
  const mounted = join(dir, 'tls');
  const server = await issueCert(ca, join(mounted, 'server'), [FQDN]);
  const client = await issueCert(ca, join(mounted, 'client'), ['apigw-apigw-syncer-client']);
  const misnamed = await issueCert(ca, join(dir, 'misnamed'), ['someone-else.apigw.svc.cluster.local']);
  const stranger = await issueCert(await makeCa(join(dir, 'other-ca'), 'another CA'), join(dir, 'stranger'), [FQDN]);

  // The chart's stream server as rendered for a cluster whose pod network is 127.0.5.0/24 and
  // whose certificates are mounted at `mounted`: the default render, TLS on.
  const [syncPort, misnamedPort, toGood, toMisnamed, toGoodByIp] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const rendered = streamServer(
    nginxConfLines(
      await render({ values: tlsValues({ listenAddress: '127.0.5.1', zoneSyncPort: syncPort, peerSources: ['127.0.5.0/24'] }, { mountPath: mounted }) }),
    ),
  );
  const { serverSide, clientSide } = playedSides(rendered);
  t.ok(serverSide.includes(`listen 127.0.5.1:${syncPort} ssl;`) && clientSide.includes('proxy_ssl on;'), 'both sides rendered');
  // Replicas connect from their pod IPs, inside the pod network.
  const podIp = '127.0.5.9';
  const servers = `${syncedServer(serverSide)}
    # The same server with a certificate that does not name the Service.
${syncedServer(serverSide.map((l) => l.replace(`127.0.5.1:${syncPort}`, `127.0.5.1:${misnamedPort}`).replace(server, misnamed)))}
    # This replica's outgoing connections, as zone_sync_ssl_* configures them, from its pod IP.
    server {
        listen 127.0.5.1:${toGood};
        proxy_bind ${podIp};
        proxy_pass 127.0.5.1:${syncPort};
${block(clientSide)}
    }
    server {
        listen 127.0.5.1:${toMisnamed};
        proxy_bind ${podIp};
        proxy_pass 127.0.5.1:${misnamedPort};
${block(clientSide)}
    }
    # Without zone_sync_ssl_name the name checked is the address dialled (with resolve: an IP).
    server {
        listen 127.0.5.1:${toGoodByIp};
        proxy_bind ${podIp};
        proxy_pass 127.0.5.1:${syncPort};
${block(clientSide.filter((l) => !l.startsWith('proxy_ssl_name')))}
    }`;
  const nginx = await startStreamNginx(t, 'zone-sync-tls', servers, toGood);

  t.ok(serverSide.includes(`ssl_certificate ${server}/tls.crt;`) && clientSide.includes(`proxy_ssl_certificate ${client}/tls.crt;`), 'the server certificate in, the client certificate out');
  const peer = { port: syncPort, ca: join(server, 'ca.crt'), servername: FQDN };
  t.equal(await tlsExchange({ ...peer, localAddress: podIp, cert: join(client, 'tls.crt'), key: join(client, 'tls.key') }), 'synced\n', "a replica with the cluster's client certificate syncs");
  t.not(await tlsExchange({ ...peer, localAddress: podIp }), 'synced\n', 'without a client certificate: refused (ssl_verify_client on)');
  t.not(await tlsExchange({ ...peer, localAddress: podIp, cert: join(stranger, 'tls.crt'), key: join(stranger, 'tls.key') }), 'synced\n', "another CA's certificate: refused");
  t.not(
    await tlsExchange({ ...peer, localAddress: '127.0.6.9', cert: join(client, 'tls.crt'), key: join(client, 'tls.key') }),
    'synced\n',
    'from outside the pod network, even with the right certificate: refused (allow/deny)',
  );
  t.equal(await tcpExchange(toGood), 'synced\n', "outgoing: the peer's certificate names the Service → synced");
  t.equal(await tcpExchange(toMisnamed), 'closed', "outgoing: a peer whose certificate names something else → refused");
  t.equal(await tcpExchange(toGoodByIp), 'closed', 'outgoing without zone_sync_ssl_name: the IP is checked, which the certificate cannot name → refused');
  const log = await nginx.logs();
  for (const refusal of [/access forbidden by rule/, /client sent no required SSL certificate/, /client SSL certificate verify error/, /upstream SSL certificate does not match/]) {
    t.match(log, refusal, `nginx logged why: ${refusal.source}`);
  }
});

t.test('certificates two CAs below the root: zone_sync needs verifyDepth 2, both ways, on real nginx', async (t) => {
  requirePart(nginxMissing());
  const dir = mkdtempSync(join(tmpdir(), 'apigw-zone-sync-depth-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // root → policy CA → issuing CA → the replicas' certificate: tls.crt holds it and both
  // intermediates, ca.crt the root, as cert-manager writes a certificate from such a chain.
  // OpenSSL's depth counts the CAs above the certificate, the trust anchor aside: nginx's
  // default 1 takes one intermediate, a chain with two needs 2.
  const root = await makeCa(join(dir, 'root'), 'apigw root CA');
  const policy = await makeIntermediateCa(root, join(dir, 'policy'), 'apigw policy CA');
  const issuing = await makeIntermediateCa(policy, join(dir, 'issuing'), 'apigw issuing CA');
  // Both certificates every replica mounts under tls.mountPath come from the issuing CA.
  const mounted = join(dir, 'tls');
  const node = await issueCert(issuing, join(mounted, 'server'), [FQDN]);
  await issueCert(issuing, join(mounted, 'client'), ['apigw-apigw-syncer-client'], 1, { usages: ['clientAuth'] });
  t.equal((readFileSync(join(node, 'tls.crt'), 'utf8').match(/BEGIN CERTIFICATE/g) ?? []).length, 3, 'tls.crt: the certificate and both intermediates');
  const oneBelow = await issueCert(policy, join(dir, 'one-below'), [FQDN]);
  const podIp = '127.0.5.9';
  for (const verifyDepth of [1, 2]) {
    const [syncPort, noClientCheckPort, outgoing] = await Promise.all([freePort(), freePort(), freePort()]);
    const rendered = streamServer(
      nginxConfLines(await render({ values: tlsValues({ listenAddress: '127.0.5.1', zoneSyncPort: syncPort, peerSources: ['127.0.5.0/24'] }, { mountPath: mounted, verifyDepth }) })),
    );
    const { serverSide, clientSide } = playedSides(rendered);
    const servers = `${syncedServer(serverSide)}
    # The same server without the client check: what the outgoing side's verification alone decides.
${syncedServer(serverSide.filter((l) => l !== 'ssl_verify_client on;').map((l) => l.replace(`127.0.5.1:${syncPort}`, `127.0.5.1:${noClientCheckPort}`)))}
    server {
        listen 127.0.5.1:${outgoing};
        proxy_bind ${podIp};
        proxy_pass 127.0.5.1:${noClientCheckPort};
${block(clientSide)}
    }`;
    const nginx = await startStreamNginx(t, `zone-sync-depth-${verifyDepth}`, servers, outgoing);
    const connectIn = (dir: string): Promise<string> =>
      tlsExchange({ port: syncPort, localAddress: podIp, cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt'), servername: FQDN });
    const [incoming, oneIntermediate, out] = [await connectIn(node), await connectIn(oneBelow), await tcpExchange(outgoing)];
    await nginx.stop();
    const log = await nginx.logs();
    t.equal(oneIntermediate, 'synced\n', `verifyDepth ${verifyDepth}: a certificate one CA below the root syncs`);
    if (verifyDepth === 1) {
      t.not(incoming, 'synced\n', 'verifyDepth 1: a replica connecting in with a certificate two CAs below is refused');
      t.equal(out, 'closed', "verifyDepth 1: connecting out, such a peer's certificate is refused");
      // OpenSSL stops building the chain at the depth limit, so the root is never reached.
      t.match(log, /client SSL certificate verify error: \(20:unable to get local issuer certificate\)/, 'incoming: nginx says why');
      t.match(log, /upstream SSL certificate verify error: \(20:unable to get local issuer certificate\)/, 'outgoing: nginx says why');
    } else {
      t.equal(incoming, 'synced\n', 'verifyDepth 2: a replica connecting in syncs');
      t.equal(out, 'synced\n', "verifyDepth 2: connecting out, the peer's certificate verifies");
    }
  }
});
