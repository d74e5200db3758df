import t from 'tap';
import { MAX_ORIGIN_LENGTH, MAX_TOKEN_BYTES, parseCheckRequest } from '../sidecar/http/check-request.js';

t.test('valid requests', async (t) => {
  t.same(parseCheckRequest('abc.DEF-123_~', undefined, 'me'), { ok: true, token: 'abc.DEF-123_~', origin: 'me', strict: false }, 'origin defaults to this pod');
  t.same(parseCheckRequest('tok', '', 'me'), { ok: true, token: 'tok', origin: 'me', strict: false });
  t.same(parseCheckRequest('tok', '10.1.2.3', 'me', 'strict=true'), { ok: true, token: 'tok', origin: '10.1.2.3', strict: true });
  t.same(parseCheckRequest('tok', undefined, 'me', 'strict=false&x=1'), { ok: true, token: 'tok', origin: 'me', strict: false });
  t.equal(parseCheckRequest('x'.repeat(MAX_TOKEN_BYTES), undefined, 'me').ok, true, 'exactly 8 KiB is allowed');
});

t.test('rejected tokens say why, and never echo the token', async (t) => {
  const cases: Array<[string | undefined, RegExp]> = [
    [undefined, /required/],
    ['', /empty/],
    ['x'.repeat(MAX_TOKEN_BYTES + 1), /longer than 8192/],
    ['has space', /visible ASCII/],
    ['tab\there', /visible ASCII/],
    ['nul\u0000x', /visible ASCII/],
    ['del\u007fx', /visible ASCII/],
    ['café', /visible ASCII/],
  ];
  for (const [token, why] of cases) {
    const r = parseCheckRequest(token, undefined, 'me');
    t.equal(r.ok, false, JSON.stringify(token?.slice(0, 20)));
    if (!r.ok) {
      t.match(r.error, why);
      if (token) t.notOk(r.error.includes(token), 'error text does not contain the token');
    }
  }
  t.equal(parseCheckRequest(['a', 'b'], undefined, 'me').ok, false, 'repeated header');
  t.equal(parseCheckRequest('tok', 'bad origin', 'me').ok, false, 'malformed origin');
  t.same(parseCheckRequest('tok', undefined, 'me', 'strict=yes'), { ok: false, reason: 'bad_query', error: 'strict must be true or false' });
  t.same(parseCheckRequest('tok', 'bad origin', 'me'), { ok: false, reason: 'bad_origin', error: 'X-Nginx-Origin must be a pod name or IP' }, 'each rejection says what was wrong');
  t.same(parseCheckRequest(undefined, undefined, 'me'), { ok: false, reason: 'bad_token', error: 'X-Auth-Token header is required' });
  t.same(parseCheckRequest('tok', ['a', 'b'], 'me'), { ok: false, reason: 'bad_origin', error: 'X-Nginx-Origin may be sent only once' });
  const longest = 'o'.repeat(MAX_ORIGIN_LENGTH);
  t.same(parseCheckRequest('tok', longest, 'me'), { ok: true, token: 'tok', origin: longest, strict: false }, 'an origin of 253 characters (a DNS name) is allowed');
  t.same(parseCheckRequest('tok', `${longest}o`, 'me'), { ok: false, reason: 'bad_origin', error: 'X-Nginx-Origin must be a pod name or IP' }, 'one more is not');
});
