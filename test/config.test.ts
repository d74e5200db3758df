import t from 'tap';
import { probeTimes, retryWindowMs } from '../sidecar/check/retry-policy.js';
import { VARIABLES, type Env } from '../sidecar/config.js';
import { ctx, errors, ok } from './support/parse-config.js';

t.test('defaults', async (t) => {
  const c = ok({});
  t.equal(c.pod.name, 'apigw-7d9f-abcde', 'POD_NAME falls back to the hostname, which is the pod name in Kubernetes');
  t.equal(c.pod.namespace, 'default');
  t.same(c.listen, { host: '127.0.0.1', port: 8080 });
  t.same(c.ops, { host: '0.0.0.0', port: 9090 });
  t.equal(c.discovery.mode, 'static', 'static outside a cluster');
  t.equal(c.probe.header, 'Authorization');
  t.equal(c.probe.headerPrefix, 'Bearer ');
  t.equal(c.probe.path, '/apigw-syncer/probe');
  t.equal(c.hardTimeoutMs, 1500);
  t.equal(c.logLevel, 'info');
  t.equal(c.canary, undefined, 'the canary is off');
  t.equal(ok({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }).discovery.mode, 'kubernetes', 'kubernetes inside a cluster');
  t.equal(ok({}, { ...ctx, serviceAccountNamespace: 'apigw\n' }).pod.namespace, 'apigw', 'namespace from the service-account file');
});

t.test('defaults report a token replicated within ~100 ms as Synced, and a missing one as missing', async (t) => {
  const { retry, hardTimeoutMs, probe } = ok({}, ctx);
  const times = probeTimes(retry, retryWindowMs(hardTimeoutMs, probe.timeoutMs));
  const last = times[times.length - 1]!;
  t.ok(last * (1 - retry.jitter) >= 100, `even with the shortest jittered delays, probes go on past 100 ms of lag (last at ${last.toFixed(0)} ms)`);
  t.ok(last + probe.timeoutMs < hardTimeoutMs, `the last probe is answered before the deadline (${last.toFixed(0)} + ${probe.timeoutMs} < ${hardTimeoutMs} ms), so a replica that never gets the token is "missing", not "timeout"`);
});

t.test('every variable is read and has a default in the table', async (t) => {
  const env: Env = {
    POD_NAME: 'apigw-0', POD_NAMESPACE: 'gw', POD_IP: '10.1.0.7', LOG_LEVEL: 'debug',
    SYNCER_LISTEN_ADDR: '127.0.0.1:18080', SYNCER_OPS_ADDR: '[::1]:19090', SYNCER_DISCOVERY: 'static',
    SYNCER_PEERS: ' a=10.1.0.8:8000 , b=apigw-b.gw.svc:8001,', SYNCER_PROBE_SCHEME: 'https', SYNCER_PROBE_PORT: '8443',
    SYNCER_PROBE_PATH: '/probe', SYNCER_PROBE_HEADER: 'X-Token', SYNCER_PROBE_HEADER_PREFIX: '', SYNCER_PROBE_TIMEOUT_MS: '100',
    SYNCER_PROBE_CONNECTIONS: '4', SYNCER_RETRY_DELAY_MS: '5', SYNCER_RETRY_BACKOFF: '1.5', SYNCER_RETRY_MAX_DELAY_MS: '50',
    SYNCER_RETRY_JITTER: '0', SYNCER_MAX_RETRIES: '3', SYNCER_HARD_TIMEOUT_MS: '900', SYNCER_DEPLOYMENT: 'apigw',
    SYNCER_PEER_SCOPE: 'deployment', SYNCER_RESYNC_MS: '60000', SYNCER_COALESCE_MS: '10', SYNCER_WATCH_TIMEOUT_S: '30',
    SYNCER_DNS_NAME: 'apigw-headless', SYNCER_DNS_INTERVAL_MS: '1000',
    SYNCER_MAX_IN_FLIGHT: '64', SYNCER_SYNCED_TTL_MS: '0', SYNCER_SYNCED_MAX: '10',
    SYNCER_PROBE_CA_FILE: '/tls/ca.crt', SYNCER_PROBE_CERT_FILE: '/tls/tls.crt', SYNCER_PROBE_KEY_FILE: '/tls/tls.key', SYNCER_PROBE_SERVERNAME: 'apigw.gw.svc',
    SYNCER_CANARY_INTERVAL_MS: '15000', SYNCER_CANARY_TIMEOUT_MS: '3000', SYNCER_CANARY_URL: 'http://[::1]:8002/api/8/http/keyvals/tokens-v2',
  };
  t.same(Object.keys(env).sort(), Object.keys(VARIABLES).sort(), 'the test covers exactly the documented variables');
  const c = ok(env);
  t.same(c.pod, { name: 'apigw-0', namespace: 'gw', ip: '10.1.0.7' });
  t.same(c.ops, { host: '::1', port: 19090 });
  t.same(c.discovery.staticPeers, [{ name: 'a', host: '10.1.0.8', port: 8000 }, { name: 'b', host: 'apigw-b.gw.svc', port: 8001 }]);
  t.same(c.probe, {
    scheme: 'https', port: 8443, path: '/probe', header: 'X-Token', headerPrefix: '', timeoutMs: 100, connectionsPerPeer: 4,
    tls: { caFile: '/tls/ca.crt', certFile: '/tls/tls.crt', keyFile: '/tls/tls.key', servername: 'apigw.gw.svc' },
  });
  t.same(c.retry, { delayMs: 5, backoff: 1.5, maxDelayMs: 50, jitter: 0, maxRetries: 3 });
  t.same(c.checks, { maxInFlight: 64, syncedTtlMs: 0, syncedMax: 10 });
  t.same(c.discovery.kubernetes, { deployment: 'apigw', scope: 'deployment', resyncMs: 60000, coalesceMs: 10, watchTimeoutS: 30 });
  t.same(c.discovery.dns, { name: 'apigw-headless', intervalMs: 1000 });
  t.same(c.canary, { intervalMs: 15000, timeoutMs: 3000, url: 'http://[::1]:8002/api/8/http/keyvals/tokens-v2' });
});

t.test('every problem is reported at once, each naming its variable', async (t) => {
  const errs = errors({
    SYNCER_LISTEN_ADDR: 'localhost',
    SYNCER_PROBE_PORT: '70000',
    SYNCER_HARD_TIMEOUT_MS: 'soon',
    SYNCER_RETRY_BACKOFF: 'x',
    SYNCER_DISCOVERY: 'consul',
    LOG_LEVEL: 'loud',
    SYNCER_PEERS: 'a=1.2.3.4:80,a=1.2.3.5:80,B=1.1.1.1:1,c=host,d=h:0',
    POD_IP: 'not-an-ip',
    SYNCER_PROBE_HEADER: 'Bad Header',
    SYNCER_PROBE_PATH: 'no-slash',
    SYNCER_RETRY_DELAY_MS: '500',
  });
  t.same(errs, [
    'POD_IP: must be an IP address, got "not-an-ip"',
    'SYNCER_DISCOVERY: must be one of static, kubernetes, dns, got "consul"',
    'SYNCER_PEERS: peer "a" is listed twice',
    'SYNCER_PEERS: "B=1.1.1.1:1" must be name=host:port with a lowercase DNS-style name',
    'SYNCER_PEERS: peer "c": must be host:port, got "host"',
    'SYNCER_PEERS: peer "d": port must not be 0',
    'SYNCER_PROBE_PATH: must start with "/" and hold no spaces, got "no-slash"',
    'SYNCER_PROBE_HEADER: "Bad Header" is not a valid header name',
    'SYNCER_RETRY_MAX_DELAY_MS: must be at least SYNCER_RETRY_DELAY_MS (500)',
    'LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    'SYNCER_LISTEN_ADDR: must be host:port, got "localhost"',
    'SYNCER_PROBE_PORT: must be between 1 and 65535, got 70000',
    'SYNCER_RETRY_BACKOFF: must be a number, got "x"',
    'SYNCER_HARD_TIMEOUT_MS: must be an integer, got "soon"',
  ], 'exactly these errors, each once, naming its variable');
});

t.test('mode-specific requirements', async (t) => {
  t.same(errors({ SYNCER_DISCOVERY: 'dns' }), ['SYNCER_DNS_NAME: is required when SYNCER_DISCOVERY=dns']);
  t.same(errors({ SYNCER_DISCOVERY: 'kubernetes', SYNCER_PEERS: 'a=1.1.1.1:80' }), ['SYNCER_PEERS: is only used with SYNCER_DISCOVERY=static (discovery is kubernetes)']);
  t.same(errors({ SYNCER_PEER_SCOPE: 'cluster' }), ['SYNCER_PEER_SCOPE: must be one of revision, deployment, got "cluster"']);
});

t.test('static peers: only hosts the probe URL can be built from (IPv6 included)', async (t) => {
  t.same(
    ok({ SYNCER_PEERS: 'a=10.0.0.1:80,b=[fd00::2]:8000,c=Apigw-C.gw.svc:81' }).discovery.staticPeers,
    [{ name: 'a', host: '10.0.0.1', port: 80 }, { name: 'b', host: 'fd00::2', port: 8000 }, { name: 'c', host: 'Apigw-C.gw.svc', port: 81 }],
  );
  t.same(errors({ SYNCER_PEERS: 'a=host/x:80' }), ['SYNCER_PEERS: peer "a": "host/x" is not an IP address or host name'], 'the crash of issue 9: refused at start');
  t.same(errors({ SYNCER_PEERS: 'a=user@host:80' }), ['SYNCER_PEERS: peer "a": "user@host" is not an IP address or host name']);
  t.same(errors({ SYNCER_PEERS: 'a=-bad.host:80' }), ['SYNCER_PEERS: peer "a": "-bad.host" is not an IP address or host name']);
  t.same(errors({ SYNCER_PEERS: 'a=[fe80::1%eth0]:80' }), ['SYNCER_PEERS: peer "a": "fe80::1%eth0" cannot be part of a URL (http://[fe80::1%eth0]:80)'], 'zone IDs have no URL form');
  t.same(errors({ SYNCER_PEERS: 'a=127.1:80' }), ['SYNCER_PEERS: peer "a": "127.1" would be probed as "127.0.0.1": write that instead']);
});

t.test('TLS files: https only, certificate and key together, a DNS name to verify', async (t) => {
  t.same(errors({ SYNCER_PROBE_CA_FILE: '/ca.crt', SYNCER_PROBE_SERVERNAME: 'a.b' }), [
    'SYNCER_PROBE_CA_FILE: is only used with SYNCER_PROBE_SCHEME=https',
    'SYNCER_PROBE_SERVERNAME: is only used with SYNCER_PROBE_SCHEME=https',
  ]);
  t.same(errors({ SYNCER_PROBE_SCHEME: 'https', SYNCER_PROBE_CERT_FILE: '/c.crt' }), ['SYNCER_PROBE_KEY_FILE: SYNCER_PROBE_CERT_FILE and SYNCER_PROBE_KEY_FILE go together']);
  t.same(errors({ SYNCER_PROBE_SCHEME: 'https', SYNCER_PROBE_KEY_FILE: '/c.key' }), ['SYNCER_PROBE_CERT_FILE: SYNCER_PROBE_CERT_FILE and SYNCER_PROBE_KEY_FILE go together']);
  t.same(errors({ SYNCER_PROBE_SCHEME: 'https', SYNCER_PROBE_SERVERNAME: '10.0.0.1' }), ['SYNCER_PROBE_SERVERNAME: must be a DNS name (a certificate\'s subjectAltName), got "10.0.0.1"']);
  t.same(ok({ SYNCER_PROBE_SCHEME: 'https' }).probe.tls, { caFile: undefined, certFile: undefined, keyFile: undefined, servername: undefined });
});

t.test('canary: on with an interval, its timeout shorter, its URL the own replica\'s keyvals API on loopback', async (t) => {
  t.same(ok({ SYNCER_CANARY_INTERVAL_MS: '10000' }).canary, { intervalMs: 10000, timeoutMs: 5000, url: 'http://127.0.0.1:8002/api/9/http/keyvals/apigw_tokens' }, 'defaults');
  t.same(ok({ SYNCER_CANARY_INTERVAL_MS: '2000', SYNCER_CANARY_TIMEOUT_MS: '1000', SYNCER_CANARY_URL: 'https://localhost:9443/api/9/http/keyvals/z' }).canary?.url, 'https://localhost:9443/api/9/http/keyvals/z');
  t.same(errors({ SYNCER_CANARY_INTERVAL_MS: '500' }), ['SYNCER_CANARY_INTERVAL_MS: must be 0 (off) or at least 1000, got 500']);
  t.same(errors({ SYNCER_CANARY_INTERVAL_MS: '5000' }), ['SYNCER_CANARY_TIMEOUT_MS: must be less than SYNCER_CANARY_INTERVAL_MS (5000), so runs never overlap']);
  t.same(errors({ SYNCER_CANARY_TIMEOUT_MS: '1000', SYNCER_CANARY_URL: 'http://127.0.0.1:1/api/9/http/keyvals/z' }), [
    'SYNCER_CANARY_TIMEOUT_MS: is only used with SYNCER_CANARY_INTERVAL_MS > 0 (the canary is off)',
    'SYNCER_CANARY_URL: is only used with SYNCER_CANARY_INTERVAL_MS > 0 (the canary is off)',
  ]);
  const urlError = (url: string) => errors({ SYNCER_CANARY_INTERVAL_MS: '10000', SYNCER_CANARY_URL: url });
  t.same(urlError('not a url'), ['SYNCER_CANARY_URL: must be a URL, got "not a url"']);
  t.same(urlError('ftp://127.0.0.1/api/9/http/keyvals/z'), ['SYNCER_CANARY_URL: must be http or https, got "ftp:"']);
  t.same(urlError('http://10.0.0.7:8002/api/9/http/keyvals/apigw_tokens'), [
    'SYNCER_CANARY_URL: must point at this pod\'s own token API on loopback (127.x.x.x, [::1] or localhost), got "10.0.0.7"',
  ], 'never another pod\'s API across the network');
  t.same(urlError('http://127.0.0.1.nip.io:8002/api/9/http/keyvals/apigw_tokens').length, 1, 'a name that only looks like loopback');
  t.same(urlError('http://user:pw@127.0.0.1:8002/api/9/http/keyvals/apigw_tokens'), ['SYNCER_CANARY_URL: must hold no credentials, query or fragment']);
  t.same(urlError('http://127.0.0.1:8002/api/9/http/keyvals/apigw_tokens?x=1'), ['SYNCER_CANARY_URL: must hold no credentials, query or fragment']);
  t.same(urlError('http://127.0.0.1:8002/api/9/http/upstreams/u'), ['SYNCER_CANARY_URL: path must be /api/<version>/http/keyvals/<zone>, got "/api/9/http/upstreams/u"']);
  t.same(urlError('http://127.0.0.1:8002/api/9/http/keyvals/a/b'), ['SYNCER_CANARY_URL: path must be /api/<version>/http/keyvals/<zone>, got "/api/9/http/keyvals/a/b"']);
});
