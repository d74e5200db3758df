// TLS between the replicas, as the chart installs it by default (helm/README.md#tls):
//  1. renders (`helm template`, no cluster): mutual TLS on the probe path with certificates the
//     chart generates (one CA, a server and a client certificate), or cert-manager Certificates,
//     or an existing Secret; turning it off says what crosses the network and puts the
//     NetworkPolicy on; loopback is out of the default allow list;
//  2. pods of the default render, each in a network namespace of its own (support/pod-network.ts),
//     on real nginx with the real sidecar: every verdict still comes, the probe server refuses
//     plain HTTP and clients without the release's certificate, and the pod's own loopback (a
//     mesh's sidecar forwarding from it) is refused unless nginx.allowLoopbackPeers;
//  3. rotation: cert-manager renews the certificates and the CA rotates in three steps while
//     checks flow: nginx reloads, the sidecar re-reads, no check is dropped.
// Applying the Certificates to a real API server and keeping the generated CA across
// `helm upgrade` are in helm-tls-install.test.ts; the zone_sync side in helm-plus.test.ts.
import t from 'tap';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { CHART_DIR, helmLint, helmTemplate, render, type KubeObject } from './packaging/helm.js';
import { allContainers, envVar, ofKind, only, podSpec } from './packaging/k8s-objects.js';
import { podsMissing, probeAsPeer, startPods, type SimPod, type SimPods } from './packaging/nginx-pods.js';
import { secretFiles } from './packaging/secret-volume.js';
import { SNIPPETS_DIR } from './support/nginx.js';
import { directiveArgs, httpServers, inlineSnippets, meaningfulLines } from './support/nginx-conf.js';
import { http } from './support/net.js';
import { PodNetwork } from './support/pod-network.js';
import { statusOf } from './support/pod-request.js';
import { killGroup } from './support/processes.js';
import { issueCert, makeCa, type Ca, type Usage } from './support/tls-certs.js';
import { waitFor } from './support/wait.js';
import { requirePart } from './support/required.js';

const FQDN = 'apigw-apigw-syncer-peers.apigw.svc.cluster.local';
const DNS_NAMES = [FQDN, 'apigw-apigw-syncer-peers.apigw.svc', 'apigw-apigw-syncer-peers.apigw', 'apigw-apigw-syncer-peers'];
const SERVER_SECRET = 'apigw-apigw-syncer-tls-server';
const CLIENT_SECRET = 'apigw-apigw-syncer-tls-client';
/** Extended key usage OIDs. */
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const PROBE = '/apigw-syncer/probe';
const DAY_MS = 86_400_000;

/** Value sets rendered below; the last test lints each with --strict. */
const SETS = {
  defaults: {},
  'TLS off': { tls: { enabled: false } },
  'TLS off, no NetworkPolicy': { tls: { enabled: false }, networkPolicy: { enabled: false } },
  'TLS on, NetworkPolicy on': { networkPolicy: { enabled: true } },
  'cert-manager': { tls: { certManager: { issuerRef: { name: 'apigw-ca', kind: 'ClusterIssuer' } } } },
  'existing Secret': { tls: { existingSecret: 'apigw-peers-tls' } },
  'a server name of its own': { tls: { serverName: 'peers.apigw.internal' } },
  'a mesh forwarding from loopback': { nginx: { allowLoopbackPeers: true } },
} as const;

function nginxConf(objects: readonly KubeObject[]): string[] {
  return meaningfulLines(only(objects, 'ConfigMap').data?.['nginx.conf'] ?? '');
}

/** The probe server's lines, shared snippets inlined. */
function probeServer(objects: readonly KubeObject[]): string[] {
  const server = httpServers(nginxConf(objects)).find((lines) => lines.some((l) => l.includes('token-store-probe.conf')));
  if (server === undefined) throw new Error('no probe server in nginx.conf');
  return inlineSnippets(server, SNIPPETS_DIR);
}

function containerOf(objects: readonly KubeObject[], name: string): ReturnType<typeof podSpec>['containers'][number] {
  const c = allContainers(podSpec(objects)).get(name)?.container;
  if (c === undefined) throw new Error(`no ${name} container`);
  return c;
}

// ---- renders --------------------------------------------------------------------------------

t.test('the default render: mutual TLS on the probe path, with a CA and two certificates generated without a cluster', async (t) => {
  const objects = await render();
  const secrets = ofKind(objects, 'Secret');
  t.same(
    secrets.map((s) => [s.metadata?.name, s.type]),
    [
      [SERVER_SECRET, 'kubernetes.io/tls'],
      [CLIENT_SECRET, 'kubernetes.io/tls'],
    ],
    "two Secrets in cert-manager's layout",
  );
  const [server, client] = secrets.map(secretFiles);
  if (!server || !client) throw new Error('no Secrets');
  for (const files of [server, client]) t.same(Object.keys(files).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
  t.equal(server['ca.crt']?.toString(), client['ca.crt']?.toString(), 'one CA for both');
  const ca = new X509Certificate(server['ca.crt'] ?? '');
  t.ok(ca.ca, 'ca.crt is a CA certificate');
  for (const [name, files, usage] of [
    ['server', server, SERVER_AUTH],
    ['client', client, CLIENT_AUTH],
  ] as const) {
    const cert = new X509Certificate(files['tls.crt'] ?? '');
    t.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${name}: signed by that CA`);
    t.ok(cert.checkPrivateKey(createPrivateKey(files['tls.key'] ?? '')), `${name}: tls.key is its key`);
    t.ok(cert.keyUsage?.includes(usage), `${name}: usable for ${name} authentication`);
    t.equal(cert.publicKey.asymmetricKeyType, 'ec', `${name}: an ECDSA key (the cheapest handshake)`);
    t.ok(Date.parse(cert.validTo) - Date.now() > 3_649 * DAY_MS, `${name}: valid for tls.generatedDays (3650), until ${cert.validTo}`);
  }
  t.equal(new X509Certificate(server['tls.crt'] ?? '').subjectAltName, DNS_NAMES.map((n) => `DNS:${n}`).join(', '), "the server certificate names the peer Service, the checked name first");
  t.equal(secrets[0]?.metadata?.annotations?.['apigw-syncer.io/dns-names'], DNS_NAMES.join(','), 'and says so, for the next upgrade to compare');
  const again = ofKind(await render(), 'Secret').map(secretFiles);
  t.not(again[0]?.['ca.crt']?.toString(), server['ca.crt']?.toString(), 'without a cluster to look in, every render generates a new CA (helm/README.md#tls says what that means for `helm template | kubectl apply`)');

  const probe = probeServer(objects);
  t.same(directiveArgs(probe, 'listen'), [['8001', 'ssl']], 'the probe server speaks TLS only');
  t.same(
    ['ssl_certificate', 'ssl_certificate_key', 'ssl_client_certificate'].map((d) => directiveArgs(probe, d)),
    [[['/etc/apigw-tls/server/tls.crt']], [['/etc/apigw-tls/server/tls.key']], [['/etc/apigw-tls/server/ca.crt']]],
    'with the server certificate, and the CA its clients must chain to',
  );
  t.ok(probe.includes('ssl_verify_client on;'), 'a client certificate is required');

  const nginx = containerOf(objects, 'nginx');
  const syncer = containerOf(objects, 'syncer');
  t.same(
    (nginx.volumeMounts ?? []).filter((m) => m.name.startsWith('tls-')),
    [{ name: 'tls-server', mountPath: '/etc/apigw-tls/server', readOnly: true }],
    "nginx mounts the server certificate (open-source flavor: not the client one, whose key stays in the sidecar)",
  );
  t.same(
    (syncer.volumeMounts ?? []).filter((m) => m.name.startsWith('tls-')),
    [{ name: 'tls-client', mountPath: '/etc/apigw-tls/client', readOnly: true }],
    'the syncer mounts the client certificate',
  );
  t.same(
    (podSpec(objects).volumes ?? []).filter((v) => v.name.startsWith('tls-')).map((v) => [v.name, v.secret?.secretName]),
    [
      ['tls-server', SERVER_SECRET],
      ['tls-client', CLIENT_SECRET],
    ],
  );
  t.same(
    ['SYNCER_PROBE_SCHEME', 'SYNCER_PROBE_CA_FILE', 'SYNCER_PROBE_CERT_FILE', 'SYNCER_PROBE_KEY_FILE', 'SYNCER_PROBE_SERVERNAME'].map((n) => envVar(syncer, n)?.value),
    ['https', '/etc/apigw-tls/client/ca.crt', '/etc/apigw-tls/client/tls.crt', '/etc/apigw-tls/client/tls.key', FQDN],
    'the sidecar probes over https with its client certificate, and checks the name the server certificate carries (peers are probed by IP)',
  );
  t.match(
    nginx.args?.[0] ?? '',
    /^nginx_pid=\$!\nNGINX_PID=\$nginx_pid sh \/etc\/apigw\/apigw-syncer\/reload-on-change\.sh 10 \/etc\/apigw-tls\/server\/tls\.crt \/etc\/apigw-tls\/server\/tls\.key \/etc\/apigw-tls\/server\/ca\.crt &$/m,
    "nginx's container starts the watch that reloads nginx (its child, named by NGINX_PID) when the certificates change",
  );
  t.same(ofKind(objects, 'NetworkPolicy'), [], 'no NetworkPolicy by default: with TLS on, the certificate decides who may probe');
});

t.test('tls.enabled=false: clear text, said where it happens, and the NetworkPolicy on by default', async (t) => {
  const objects = await render({ values: SETS['TLS off'] });
  t.same(ofKind(objects, 'Secret'), [], 'no certificates');
  const probe = probeServer(objects);
  t.same(directiveArgs(probe, 'listen'), [['8001']], 'a plain probe server');
  t.match(only(objects, 'ConfigMap').data?.['nginx.conf'], /# tls\.enabled=false: every token a check asks about crosses the pod network in clear text\./, 'nginx.conf says so where it happens');
  t.equal(envVar(containerOf(objects, 'syncer'), 'SYNCER_PROBE_SCHEME'), undefined, 'the sidecar probes with its default, http');
  t.notOk((podSpec(objects).volumes ?? []).some((v) => v.secret !== undefined), 'no certificate volume');
  t.match(
    readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8'),
    /# false: probes go over plain http and zone_sync in clear text\. Every token a check asks about\n\s+# then crosses the pod network readable by anyone who can capture it there/,
    "values.yaml's comment on tls.enabled says what crosses the network then",
  );
  const policy = only(objects, 'NetworkPolicy');
  const probeRule = (policy.spec?.ingress ?? []).find((r) => (r.ports ?? []).some((p) => p.port === 8001));
  t.same(
    probeRule,
    { ports: [{ port: 8001, protocol: 'TCP' }], from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'apigw-syncer', 'app.kubernetes.io/instance': 'apigw' } } }] },
    'TLS off: the NetworkPolicy admits only the apigw pods of the release to the probe port',
  );
  t.same(ofKind(await render({ values: SETS['TLS off, no NetworkPolicy'] }), 'NetworkPolicy'), [], 'networkPolicy.enabled=false: none, as asked');
  t.equal(ofKind(await render({ values: SETS['TLS on, NetworkPolicy on'] }), 'NetworkPolicy').length, 1, 'networkPolicy.enabled=true: one, TLS or not');
});

t.test('cert-manager, an existing Secret, a server name of its own', async (t) => {
  const cm = await render({ values: SETS['cert-manager'] });
  t.same(ofKind(cm, 'Secret'), [], 'cert-manager: the chart generates nothing');
  const certificates = cm.filter((o) => o.kind === 'Certificate');
  t.same(
    certificates.map((c) => [c.apiVersion, c.metadata.name, (c['spec'] as { secretName?: string }).secretName]),
    [
      ['cert-manager.io/v1', SERVER_SECRET, SERVER_SECRET],
      ['cert-manager.io/v1', CLIENT_SECRET, CLIENT_SECRET],
    ],
    'two Certificates, into the Secrets the pod mounts',
  );
  t.match(certificates[0]?.['spec'], {
    commonName: FQDN,
    dnsNames: DNS_NAMES,
    usages: ['digital signature', 'key encipherment', 'server auth'],
    issuerRef: { name: 'apigw-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' },
    privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
    duration: '2160h',
    renewBefore: '720h',
  });
  t.match(certificates[1]?.['spec'], { commonName: 'apigw-apigw-syncer-client', usages: ['digital signature', 'key encipherment', 'client auth'] });
  t.notOk('dnsNames' in (certificates[1]?.['spec'] as object), 'the client certificate names no host');
  t.same(
    (podSpec(cm).volumes ?? []).filter((v) => v.secret !== undefined).map((v) => v.secret?.secretName),
    [SERVER_SECRET, CLIENT_SECRET],
    'mounted as the generated ones would be',
  );

  const existing = await render({ values: SETS['existing Secret'] });
  t.same([ofKind(existing, 'Secret'), existing.filter((o) => o.kind === 'Certificate')], [[], []], 'an existing Secret: nothing rendered');
  t.same(
    (podSpec(existing).volumes ?? []).filter((v) => v.secret !== undefined).map((v) => [v.name, v.secret?.secretName]),
    [
      ['tls-server', 'apigw-peers-tls'],
      ['tls-client', 'apigw-peers-tls'],
    ],
    'one Secret plays both parts',
  );

  const both = await helmTemplate({ values: { tls: { existingSecret: 'x', certManager: { issuerRef: { name: 'ca-issuer' } } } } });
  t.not(both.code, 0, 'two sources at once: refused');
  t.match(both.stderr, /tls\.certManager\.issuerRef\.name \(ca-issuer\) and tls\.existingSecret \(x\) are two sources for the same certificates: set one/);
  const badDuration = await helmTemplate({ values: { tls: { certManager: { duration: '90 days' } } } });
  t.match(badDuration.stderr, /at '\/tls\/certManager\/duration': '90 days' does not match pattern/, 'cert-manager durations are checked (a Go duration)');

  const named = await render({ values: SETS['a server name of its own'] });
  t.equal(new X509Certificate(secretFiles(ofKind(named, 'Secret')[0] ?? {})['tls.crt'] ?? '').subjectAltName?.split(', ')[0], 'DNS:peers.apigw.internal', 'tls.serverName: the name the server certificate carries first');
  t.equal(envVar(containerOf(named, 'syncer'), 'SYNCER_PROBE_SERVERNAME')?.value, 'peers.apigw.internal', 'and the one the sidecar checks');
});

t.test('loopback leaves the default allow list; nginx.allowLoopbackPeers brings it back for a mesh', async (t) => {
  const geo = (objects: readonly KubeObject[]): string[] => {
    const lines = nginxConf(objects);
    const start = lines.indexOf('geo $apigw_probe_denied {');
    return lines.slice(start + 2, lines.indexOf('}', start)).map((l) => l.split(' ')[0] ?? '');
  };
  t.same(geo(await render()), ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'], 'the private ranges, not 127.0.0.0/8 or ::1');
  t.same(geo(await render({ values: SETS['a mesh forwarding from loopback'] })).slice(-2), ['127.0.0.0/8', '::1'], 'opted in: loopback too');
});

// ---- pods of the default render on real nginx -----------------------------------------------

/**
 * A token the origin's nginx is asked about through wait-strict: the verdict the client sees.
 * A fresh connection each time: a kept-alive one may be closed by nginx's reload just as a
 * request goes out on it, which is the client's race, not a dropped check.
 */
async function verdictAt(pod: SimPod, token: string): Promise<{ status: number; verdict: string | null }> {
  const res = await http(`${pod.base}/`, { headers: { authorization: `Bearer ${token}` } });
  const verdict = res.headers['x-token-status'];
  return { status: res.status, verdict: typeof verdict === 'string' ? verdict : null };
}

t.test('pods of the default render, each in a network namespace of its own, on real nginx with the real sidecar', async (t) => {
  requirePart(podsMissing());
  const network = await PodNetwork.create('127.0.102');
  const dir = mkdtempSync(join(tmpdir(), 'apigw-tls-pods-'));
  let release: SimPods | undefined;
  t.teardown(async () => {
    await release?.stop();
    await network.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  const peers = ['pod-a', 'pod-b', 'pod-c', 'pod-d'];
  // A deadline long enough for a loaded machine: a peer that never gets the token is "missing"
  // after its retries (~1.5 s), long before it; only a peer that does not answer reaches it.
  release = await startPods(
    network,
    [...peers.map((name) => ({ name, peers })), { name: 'pod-mesh', allowLoopbackPeers: true, peers: ['pod-mesh'] }],
    { config: { hardTimeoutMs: 3_000 } },
  );
  const [a, b, c, d, mesh] = release.pods;
  if (!a || !b || !c || !d || !mesh) throw new Error('pods not started');

  await t.test('a check over mutual TLS still gives every verdict', async (t) => {
    const cases: [string, readonly SimPod[], number, string][] = [
      ['on every replica', [a, b, c, d], 200, 'Synced'],
      ['on two of three peers', [a, b, c], 503, 'Partialy'],
      ['on one of three peers', [a, b], 503, 'NotSynced'],
    ];
    for (const [what, holders, status, verdict] of cases) {
      const token = `tok-${verdict}-${Date.now()}`;
      for (const pod of holders) t.equal(await pod.postToken(token), 201, `${what}: written on ${pod.name}`);
      t.same(await verdictAt(a, token), { status, verdict }, `${what}: ${verdict}`);
    }
    // A peer that accepts connections and never answers (its nginx frozen): the deadline decides.
    const token = `tok-Timeout-${Date.now()}`;
    for (const pod of [a, b, c, d]) await pod.postToken(token);
    killGroup(d.nginx.pid, 'SIGSTOP');
    try {
      t.same(await verdictAt(a, token), { status: 503, verdict: 'Timeout' }, 'one replica hangs: Timeout');
    } finally {
      killGroup(d.nginx.pid, 'SIGCONT');
    }
    t.same(await verdictAt(a, token), { status: 200, verdict: 'Synced' }, 'thawed: Synced again');
  });

  await t.test('the probe server refuses plain HTTP and clients without the release certificate, before any lookup', async (t) => {
    const token = `tok-refused-${Date.now()}`;
    t.equal(await b.postToken(token), 201, 'the token is on pod-b');
    t.equal(await probeAsPeer(b, a.tls, token), 200, "control: with pod-a's sidecar certificate, pod-b answers that it holds the token");
    const auth = { authorization: `Bearer ${token}` };
    const plain = await http(`http://${b.netns.ip}:8001${PROBE}`, { headers: auth });
    t.same([plain.status, /The plain HTTP request was sent to HTTPS port/.test(plain.body)], [400, true], 'plain HTTP: 400, the token never looked up');
    const ca = readFileSync(a.tls.ca);
    const anonymous = await http(`${b.probeUrl}${PROBE}`, { headers: auth, tls: { ca, servername: a.tls.servername } });
    t.same([anonymous.status, /No required SSL certificate was sent/.test(anonymous.body)], [400, true], 'no client certificate: 400');
    const stranger = await issueCert(await makeCa(join(dir, 'stranger-ca'), 'another CA'), join(dir, 'stranger'), [], 1, { usages: ['clientAuth'], commonName: 'apigw-apigw-syncer-client' });
    const foreign = await http(`${b.probeUrl}${PROBE}`, {
      headers: auth,
      tls: { ca, servername: a.tls.servername, cert: readFileSync(join(stranger, 'tls.crt')), key: readFileSync(join(stranger, 'tls.key')) },
    });
    t.same([foreign.status, /The SSL certificate error/.test(foreign.body)], [400, true], "a client certificate of another CA (even with the sidecar's name): 400");
  });

  await t.test("the pod's own loopback (a mesh's sidecar forwarding from it) is refused unless nginx.allowLoopbackPeers", async (t) => {
    const token = `tok-loopback-${Date.now()}`;
    for (const pod of [a, mesh]) t.equal(await pod.postToken(token), 201, `token on ${pod.name}`);
    const probeFrom = (pod: SimPod, host: string): Promise<number> =>
      pod
        .inside({ url: `https://${host}:8001${PROBE}`, headers: { authorization: `Bearer ${token}` }, ca: pod.tls.ca, cert: pod.tls.cert, key: pod.tls.key, servername: pod.tls.servername })
        .then(statusOf);
    t.equal(await probeFrom(a, a.netns.ip), 200, 'control: from inside pod-a to its pod IP, the source is a pod address: 200');
    t.equal(await probeFrom(a, '127.0.0.1'), 403, 'from inside pod-a to 127.0.0.1, the source is loopback: 403 with the default allow list');
    t.equal(await probeFrom(mesh, '127.0.0.1'), 200, 'a pod rendered with nginx.allowLoopbackPeers: loopback admitted');
  });
});

// ---- rotation ----------------------------------------------------------------------------------

interface CertificateSpec {
  readonly secretName: string;
  readonly commonName?: string;
  readonly dnsNames?: readonly string[];
  readonly usages: readonly string[];
}

/** Plays cert-manager's CA issuer: a Secret per rendered Certificate, its leaf from `ca`, ca.crt = `trust`'s certificates. */
async function issueSecrets(certificates: readonly KubeObject[], ca: Ca, trust: readonly Ca[], dir: string): Promise<KubeObject[]> {
  const bundle = trust.map((c) => readFileSync(c.crt, 'utf8')).join('');
  return Promise.all(
    certificates.map(async (c) => {
      const spec = c['spec'] as CertificateSpec;
      const usages = spec.usages.flatMap((u): Usage[] => (u === 'server auth' ? ['serverAuth'] : u === 'client auth' ? ['clientAuth'] : []));
      const out = await issueCert(ca, mkdtempSync(join(dir, `${spec.secretName}-`)), spec.dnsNames ?? [], 1, { usages, ...(spec.commonName === undefined ? {} : { commonName: spec.commonName }) });
      const data = { 'ca.crt': bundle, 'tls.crt': readFileSync(join(out, 'tls.crt'), 'utf8'), 'tls.key': readFileSync(join(out, 'tls.key'), 'utf8') };
      return {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/tls',
        metadata: { name: spec.secretName, namespace: 'apigw' },
        data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      };
    }),
  );
}

/** The certificate a pod's probe server presents to a new connection. */
function presented(pod: SimPod): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: pod.netns.ip, port: 8001, servername: pod.tls.servername, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.destroy();
      resolve(new X509Certificate(raw));
    });
    socket.on('error', reject);
  });
}

const reloads = (pod: SimPod): number => (pod.nginx.output().match(/signal 1 \(SIGHUP\) received/g) ?? []).length;
const rereads = (pod: SimPod): number => pod.syncer.lines.filter((l) => l['msg'] === 'TLS files changed: new connections use them').length;

t.test('rotation: cert-manager renews, the CA rotates in three steps; nginx reloads, the sidecar re-reads, no check is dropped', async (t) => {
  requirePart(podsMissing());
  const network = await PodNetwork.create('127.0.103');
  const dir = mkdtempSync(join(tmpdir(), 'apigw-tls-rotation-'));
  let release: SimPods | undefined;
  let over = false;
  t.teardown(async () => {
    over = true;
    await release?.stop();
    await network.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  const [ca1, ca2] = await Promise.all([makeCa(join(dir, 'ca1'), 'apigw CA 1'), makeCa(join(dir, 'ca2'), 'apigw CA 2')]);
  let certificates: KubeObject[] = [];
  release = await startPods(network, [{ name: 'pod-a' }, { name: 'pod-b' }], {
    tls: SETS['cert-manager'].tls,
    // Every check probes: the Synced memo would answer repeats without a connection.
    config: { syncedTtlMs: 0 },
    secrets: async (rendered) => {
      certificates = rendered.filter((o) => o.kind === 'Certificate');
      return issueSecrets(certificates, ca1, [ca1], dir);
    },
  });
  const [a, b] = release.pods;
  if (!a || !b) throw new Error('pods not started');
  const token = `tok-rotation-${Date.now()}`;
  for (const pod of [a, b]) t.equal(await pod.postToken(token), 201);
  t.same(await verdictAt(a, token), { status: 200, verdict: 'Synced' }, 'Synced with the certificates cert-manager issued');

  // Checks flow through pod-a's nginx, which asks its sidecar, which probes pod-b over mutual TLS.
  const answers: { status: number; verdict: string | null; at: number }[] = [];
  const traffic = Promise.all(
    Array.from({ length: 2 }, async () => {
      while (!over) answers.push({ ...(await verdictAt(a, token)), at: performance.now() });
    }),
  );
  const rotate = async (step: string, ca: Ca, trust: readonly Ca[], leaves?: readonly KubeObject[]): Promise<readonly KubeObject[]> => {
    const before = { nginx: [a, b].map(reloads), sidecar: [a, b].map(rereads) };
    const secrets = leaves === undefined ? await issueSecrets(certificates, ca, trust, dir) : leaves.map((s) => withTrust(s, trust));
    for (const s of secrets) release?.rotateSecret(s.metadata.name, secretFiles(s));
    const context = (): string => [a, b].map((p) => `--- ${p.name}: nginx\n${p.nginx.output()}\n--- ${p.name}: sidecar\n${p.syncer.output()}`).join('\n');
    await waitFor(() => [a, b].every((p, i) => reloads(p) > (before.nginx[i] ?? 0)), `${step}: both nginx reloaded`, { timeoutMs: 15_000, intervalMs: 50, context });
    await waitFor(() => [a, b].every((p, i) => rereads(p) > (before.sidecar[i] ?? 0)), `${step}: both sidecars re-read their files`, { timeoutMs: 25_000, intervalMs: 100, context });
    t.pass(`${step}: nginx reloaded and the sidecars re-read, in both pods`);
    return secrets;
  };
  const withTrust = (secret: KubeObject, trust: readonly Ca[]): KubeObject => ({
    ...secret,
    data: { ...(secret['data'] as Record<string, string>), 'ca.crt': Buffer.from(trust.map((c) => readFileSync(c.crt, 'utf8')).join('')).toString('base64') },
  });

  const firstServer = await presented(b);
  // 1. cert-manager renews (same CA): new keys and certificates.
  const renewed = await rotate('renewal', ca1, [ca1]);
  const second = await presented(b);
  t.not(second.serialNumber, firstServer.serialNumber, "pod-b's probe server presents the renewed certificate");
  // 2. the new CA is trusted too, 3. the certificates come from it, 4. the old CA is trusted no more.
  await rotate('trust CA 2 beside CA 1', ca1, [ca1, ca2], renewed);
  const fromCa2 = await rotate('certificates from CA 2', ca2, [ca1, ca2]);
  t.ok((await presented(b)).checkIssued(new X509Certificate(readFileSync(ca2.crt))), "pod-b's probe server presents CA 2's certificate");
  await rotate('CA 1 trusted no more', ca2, [ca2], fromCa2);
  const oldClient = secretFiles(renewed.find((s) => s.metadata.name === CLIENT_SECRET) ?? { metadata: { name: '' }, apiVersion: 'v1', kind: 'Secret' });
  const refusedOld = await http(`${b.probeUrl}${PROBE}`, {
    headers: { authorization: `Bearer ${token}` },
    tls: { ca: readFileSync(ca2.crt), servername: b.tls.servername, cert: oldClient['tls.crt'], key: oldClient['tls.key'] },
  });
  t.equal(refusedOld.status, 400, "pod-b now refuses CA 1's client certificate, the one pod-a's sidecar held before");
  // So a check that is Synced now proves pod-a's sidecar presents CA 2's certificate.
  const after = performance.now();
  await waitFor(() => answers.filter((x) => x.at > after).length >= 20, '20 checks after the last step', { timeoutMs: 30_000, intervalMs: 50 });
  over = true;
  await traffic;

  const dropped = answers.filter((x) => x.status !== 200 || x.verdict !== 'Synced');
  t.comment(`${answers.length} checks through the rotation`);
  t.ok(answers.length >= 100, `checks kept coming through the rotation (${answers.length})`);
  t.same(dropped, [], 'every one 200 Synced: none dropped, before, during or after any step');
});

t.test('helm lint --strict is clean in every value set rendered here', async (t) => {
  for (const [name, values] of Object.entries(SETS)) {
    const r = await helmLint({ values });
    t.equal(r.code, 0, `${name}: ${r.code === 0 ? 'clean' : r.stdout + r.stderr}`);
  }
});
