// Configuration at its edges: the last value accepted and the first refused, and the exact
// message each refusal gives (an operator reads it to fix the variable it names).
import t from 'tap';
import { parseHostPort, type VariableName } from '../sidecar/config.js';
import { errors, ok } from './support/parse-config.js';

t.test('a variable holding only spaces counts as unset: its default applies', async (t) => {
  t.equal(ok({ POD_NAME: '   ' }).pod.name, 'apigw-7d9f-abcde');
  t.equal(ok({ SYNCER_PROBE_PATH: ' \t ' }).probe.path, '/apigw-syncer/probe');
  t.same(errors({ SYNCER_DISCOVERY: 'dns', SYNCER_DNS_NAME: '  ' }), ['SYNCER_DNS_NAME: is required when SYNCER_DISCOVERY=dns']);
  t.equal(ok({ SYNCER_DISCOVERY: 'dns', SYNCER_DNS_NAME: 'gw-headless' }).discovery.dns.name, 'gw-headless', 'given, it is used');
});

t.test('numbers: both ends of the range are accepted, one past either end is refused', async (t) => {
  t.equal(ok({ SYNCER_PROBE_PORT: '1' }).probe.port, 1);
  t.equal(ok({ SYNCER_PROBE_PORT: '65535' }).probe.port, 65535);
  t.same(errors({ SYNCER_PROBE_PORT: '0' }), ['SYNCER_PROBE_PORT: must be between 1 and 65535, got 0: no peer can be probed on port 0']);
  t.same(errors({ SYNCER_PROBE_PORT: '65536' }), ['SYNCER_PROBE_PORT: must be between 1 and 65535, got 65536']);
  t.equal(ok({ SYNCER_SYNCED_TTL_MS: '0' }).checks.syncedTtlMs, 0, 'a TTL of 0 (the memo off) is allowed');
  t.same(errors({ SYNCER_RETRY_JITTER: '1.5' }), ['SYNCER_RETRY_JITTER: must be between 0 and 1, got 1.5']);
});

t.test('a value the program could start with and then be useless is refused, saying what it would do', async (t) => {
  // Each setting's first refused value below its minimum; the minimum itself is accepted.
  const useless: ReadonlyArray<[VariableName, string, string, string]> = [
    ['SYNCER_MAX_IN_FLIGHT', '0', '1', 'between 1 and 100000, got 0: every check would be refused as overloaded'],
    ['SYNCER_HARD_TIMEOUT_MS', '0', '1', 'between 1 and 120000, got 0: every check would be answered Timeout'],
    ['SYNCER_PROBE_CONNECTIONS', '0', '1', 'between 1 and 1024, got 0: no probe could ever be sent'],
    ['SYNCER_PROBE_TIMEOUT_MS', '0', '1', 'between 1 and 60000, got 0: every probe would time out before a peer could answer'],
    ['SYNCER_RETRY_DELAY_MS', '0', '1', 'between 1 and 60000, got 0: retries would hit a peer back to back'],
    ['SYNCER_RETRY_BACKOFF', '0.9', '1', 'between 1 and 10, got 0.9: the delays would shrink instead of grow'],
    ['SYNCER_SYNCED_MAX', '0', '1', 'between 1 and 10000000, got 0: nothing could be remembered (SYNCER_SYNCED_TTL_MS=0 turns the memo off)'],
    ['SYNCER_WATCH_TIMEOUT_S', '0', '1', 'between 1 and 3600, got 0: watches would have no server-side bound, and the watchdog would cut every one after 5 s'],
    ['SYNCER_RESYNC_MS', '999', '1000', 'between 1000 and 86400000, got 999: relisting more often than every second only loads the API server'],
    ['SYNCER_DNS_INTERVAL_MS', '99', '100', 'between 100 and 3600000, got 99: resolving more often than every 100 ms only loads the resolver'],
  ];
  for (const [name, refused, lowest, message] of useless) {
    t.same(errors({ [name]: refused }), [`${name}: must be ${message}`], `${name}=${refused} refused`);
    t.same(errors({ [name]: lowest }), [], `${name}=${lowest} accepted`);
  }
  t.same(errors({ SYNCER_MAX_RETRIES: '0', SYNCER_SYNCED_TTL_MS: '0', SYNCER_COALESCE_MS: '0', SYNCER_RETRY_JITTER: '0' }), [], 'a 0 that means something (no retries, no memo, no coalescing, no jitter) is accepted');
  t.same(errors({ SYNCER_RETRY_DELAY_MS: '1', SYNCER_RETRY_MAX_DELAY_MS: '0' }), ['SYNCER_RETRY_MAX_DELAY_MS: must be at least SYNCER_RETRY_DELAY_MS (1)'], 'a 0 delay cap is refused by the cap rule');
});

t.test('host:port: ports up to 65535, IPv6 only inside brackets', async (t) => {
  t.same(parseHostPort('127.0.0.1:65535'), { host: '127.0.0.1', port: 65535 });
  t.same(parseHostPort('[::1]:0'), { host: '::1', port: 0 });
  t.equal(parseHostPort('127.0.0.1:65536'), 'port must be 0-65535, got 65536');
  t.equal(parseHostPort('[abc]:80'), '"abc" is not an IPv6 address');
  t.equal(parseHostPort('127.0.0.1'), 'must be host:port, got "127.0.0.1"');
  t.same(errors({ SYNCER_LISTEN_ADDR: '127.0.0.1:99999' }), ['SYNCER_LISTEN_ADDR: port must be 0-65535, got 99999']);
  t.same(ok({ SYNCER_OPS_ADDR: '[::1]:65535' }).ops, { host: '::1', port: 65535 });
});

t.test('POD_IP must be an address', async (t) => {
  t.same(errors({ POD_IP: 'pod-1' }), ['POD_IP: must be an IP address, got "pod-1"']);
  t.equal(ok({ POD_IP: 'fd00::7' }).pod.ip, 'fd00::7');
});

t.test('a static peer without "name=" is refused as such, not read as a shorter name', async (t) => {
  t.same(errors({ SYNCER_PEERS: 'peera1' }), ['SYNCER_PEERS: "peera1" must be name=host:port with a lowercase DNS-style name']);
  t.same(errors({ SYNCER_PEERS: 'peera10.0.0.1:80' }), ['SYNCER_PEERS: "peera10.0.0.1:80" must be name=host:port with a lowercase DNS-style name']);
  t.same(errors({ SYNCER_PEERS: '=10.0.0.1:80' }), ['SYNCER_PEERS: "=10.0.0.1:80" must be name=host:port with a lowercase DNS-style name']);
  t.same(ok({ SYNCER_PEERS: 'a=10.0.0.1:80' }).discovery.staticPeers, [{ name: 'a', host: '10.0.0.1', port: 80 }], 'a one-letter name is a name');
});

t.test('probe path: starts with "/", visible ASCII throughout', async (t) => {
  t.equal(ok({ SYNCER_PROBE_PATH: '/p?x=~1' }).probe.path, '/p?x=~1');
  t.same(errors({ SYNCER_PROBE_PATH: 'probe/x' }), ['SYNCER_PROBE_PATH: must start with "/" and hold no spaces, got "probe/x"']);
  t.same(errors({ SYNCER_PROBE_PATH: '/a b' }), ['SYNCER_PROBE_PATH: must start with "/" and hold no spaces, got "/a b"']);
  t.same(errors({ SYNCER_PROBE_PATH: '/caf\u00e9' }), ['SYNCER_PROBE_PATH: must start with "/" and hold no spaces, got "/caf\u00e9"']);
});

t.test('probe header: a token name; its prefix: printable ASCII, spaces kept', async (t) => {
  t.same(errors({ SYNCER_PROBE_HEADER: 'X Token' }), ['SYNCER_PROBE_HEADER: "X Token" is not a valid header name']);
  t.equal(ok({ SYNCER_PROBE_HEADER_PREFIX: ' Token ' }).probe.headerPrefix, ' Token ');
  t.equal(ok({ SYNCER_PROBE_HEADER_PREFIX: '' }).probe.headerPrefix, '', 'no prefix at all');
  t.same(errors({ SYNCER_PROBE_HEADER_PREFIX: 'Bearer\x01' }), ['SYNCER_PROBE_HEADER_PREFIX: must be printable ASCII']);
  t.same(errors({ SYNCER_PROBE_HEADER_PREFIX: 'Bearer \u00e9' }), ['SYNCER_PROBE_HEADER_PREFIX: must be printable ASCII']);
});

t.test('the retry delay cap may equal the first delay, not fall below it', async (t) => {
  t.match(ok({ SYNCER_RETRY_DELAY_MS: '50', SYNCER_RETRY_MAX_DELAY_MS: '50' }).retry, { delayMs: 50, maxDelayMs: 50 });
  t.same(errors({ SYNCER_RETRY_DELAY_MS: '50', SYNCER_RETRY_MAX_DELAY_MS: '49' }), ['SYNCER_RETRY_MAX_DELAY_MS: must be at least SYNCER_RETRY_DELAY_MS (50)']);
});
