// Malformed requests to the check API, as fast-check arbitraries: bad methods, paths, versions,
// header sizes, missing/duplicate/invalid headers, bad query strings, truncated requests and
// garbage bytes. Each is malformed by construction — the sidecar (or Node's HTTP parser in front
// of it) must refuse it — so a fuzz test can hold every answer to "a 4xx or a closed connection".
// fast-check, not a hand-rolled generator: it is seeded, so a failing run replays from its seed.
import fc from 'fast-check';

export interface MalformedRequest {
  /** Which rule it breaks (reported with a failure). */
  readonly kind: string;
  readonly bytes: Buffer;
  /** Half-close after writing: the request is incomplete, so only the end of input ends it. */
  readonly end: boolean;
}

const CHECK_PATH = '/v1/synced';

/** A well-formed check request line and headers (`headers` already CRLF-terminated lines). */
const request = (headers: string, line = `GET ${CHECK_PATH} HTTP/1.1`): string => `${line}\r\nHost: sidecar\r\n${headers}\r\n`;
const bad = (kind: string, text: string, end = false): MalformedRequest => ({ kind, bytes: Buffer.from(text, 'latin1'), end });
const visible = (min: number, max: number): fc.Arbitrary<string> => fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: min, maxLength: max });

/** Requests that are malformed; `token` is a token the peers hold (so only the malformation can make it fail). */
export function malformedRequest(token: string): fc.Arbitrary<MalformedRequest> {
  const good = request(`X-Auth-Token: ${token}\r\n`);
  const auth = `X-Auth-Token: ${token}\r\n`;

  const method = fc
    .oneof(
      fc.constantFrom('POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT', 'ACL', 'PROPFIND', 'PURGE', 'get', 'Get', 'G\x00T', 'GET\t'),
      fc.stringMatching(/^[A-Za-z]{1,12}$/),
    )
    .filter((m) => m !== 'GET' && m !== 'HEAD')
    .map((m) => bad('method', request(auth, `${m} ${CHECK_PATH} HTTP/1.1`)));

  // No CR, LF or space in generated paths: those end the request line (a line without a version
  // is an HTTP/0.9-style request Node accepts), which is the version and truncation cases' business.
  const path = fc
    .oneof(
      fc.constantFrom('/', '/v1/synced/', '/V1/SYNCED', '/v1/synce', '/v1//synced', '//v1/synced', '/v1/synced%2F', '/v1/synced;x', '/v1/synced#x', '*', `http://127.0.0.1${CHECK_PATH}`, '/v1/synced/..', '/v1/%73ynced'),
      visible(1, 64).map((p) => `/${p}`),
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => `/${Buffer.from(b).toString('latin1')}`),
    )
    .map((p) => p.replace(/[\r\n ]/g, '_'))
    .filter((p) => p.split('?')[0] !== CHECK_PATH)
    .map((p) => bad('path', request(auth, `GET ${p} HTTP/1.1`)));

  const version = fc
    .constantFrom('HTTP/1.2', 'HTTP/3', 'HTTX/1.1', 'HTTP/1.1x', 'http/1.1', 'HTTP/11', 'HTTP/1.', 'HTTP/1.1 extra')
    .map((v) => bad('version', request(auth, `GET ${CHECK_PATH} ${v}`)));

  const headerSize = fc.oneof(
    visible(8 * 1024 + 1, 16 * 1024).map((tok) => bad('token over 8 KiB', request(`X-Auth-Token: ${tok}\r\n`))),
    visible(254, 2048).map((origin) => bad('origin too long', request(`${auth}X-Nginx-Origin: ${origin}\r\n`))),
    fc.integer({ min: 33 * 1024, max: 64 * 1024 }).map((n) => bad('headers over 32 KiB', request(`${auth}X-Filler: ${'f'.repeat(n)}\r\n`))),
    fc.integer({ min: 100, max: 3000 }).map((n) => bad('many headers, no token', request('X-Filler: 1\r\n'.repeat(n)))),
  );

  const headers = fc.oneof(
    fc.constant(bad('token missing', request(''))),
    fc.constant(bad('token empty', request('X-Auth-Token: \r\n'))),
    visible(1, 32).map((other) => bad('token twice', request(`${auth}X-Auth-Token: ${other}\r\n`))),
    fc.tuple(visible(1, 20), visible(1, 20)).map(([a, b]) => bad('origin twice', request(`${auth}X-Nginx-Origin: ${a}\r\nX-Nginx-Origin: ${b}\r\n`))),
    fc.tuple(visible(1, 16), fc.constantFrom(' ', '\t', '\x7f', '\x80', '\xe9', '\xff', '\x01', '\x00', '\r'), visible(1, 16)).map(([a, c, b]) =>
      bad('token with a byte outside visible ASCII', request(`X-Auth-Token: ${a}${c}${b}\r\n`)),
    ),
    fc.constant(bad('Host missing', `GET ${CHECK_PATH} HTTP/1.1\r\n${auth}\r\n`)),
    fc.constantFrom('X Auth: v', 'X-Auth-Token : v', 'NoColonHere', '\x01X: v', ': no name').map((line) => bad('header line malformed', request(`${auth}${line}\r\n`))),
    fc.constant(bad('folded header', request(`${auth}X-Folded: a\r\n b\r\n`))),
    fc.constant(bad('Content-Length and Transfer-Encoding', request(`${auth}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n`))),
    fc.constant(bad('Content-Length twice, differing', request(`${auth}Content-Length: 1\r\nContent-Length: 2\r\n`))),
    visible(1, 8)
      .filter((v) => !/^\d+$/.test(v))
      .map((v) => bad('Content-Length not a number', request(`${auth}Content-Length: ${v}\r\n`))),
  );

  const strictValue = fc.stringMatching(/^[A-Za-z0-9_.~-]{0,12}$/).filter((v) => v !== 'true' && v !== 'false');
  const query = fc.oneof(
    strictValue.map((v) => `strict=${v}`),
    fc.constant('strict'),
    strictValue.map((v) => `strict=${v}&strict=true`),
    strictValue.map((v) => `a=1&strict=${v}`),
  ).map((q) => bad('query', request(auth, `GET ${CHECK_PATH}?${q} HTTP/1.1`)));

  // A good request cut before its end, then the end of input: never complete.
  const truncated = fc.integer({ min: 1, max: good.length - 1 }).map((n) => bad('truncated', good.slice(0, n), true));

  const garbage = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 2048 }).map((b) => ({ kind: 'garbage', bytes: Buffer.from(b), end: true })),
    fc.constantFrom('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'SSH-2.0-OpenSSH_9.6\r\n').map((g) => bad('another protocol', g, true)),
  );

  return fc.oneof(method, path, version, headerSize, headers, query, truncated, garbage);
}
