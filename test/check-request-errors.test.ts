// Each refusal of parseCheckRequest, word for word: the text is what nginx's client reads back.
import t from 'tap';
import { MAX_TOKEN_BYTES, parseCheckRequest } from '../sidecar/http/check-request.js';

t.test('every refusal names its reason and says what was wrong', async (t) => {
  const cases: Array<[Parameters<typeof parseCheckRequest>, string, string]> = [
    [[['a', 'b'], undefined, 'me'], 'bad_token', 'X-Auth-Token may be sent only once'],
    [[undefined, undefined, 'me'], 'bad_token', 'X-Auth-Token header is required'],
    [['', undefined, 'me'], 'bad_token', 'X-Auth-Token is empty'],
    [['x'.repeat(MAX_TOKEN_BYTES + 1), undefined, 'me'], 'bad_token', 'X-Auth-Token is longer than 8192 bytes'],
    [['a b', undefined, 'me'], 'bad_token', 'X-Auth-Token must be visible ASCII (no spaces or control characters)'],
    [['tok', ['a', 'b'], 'me'], 'bad_origin', 'X-Nginx-Origin may be sent only once'],
    [['tok', 'x'.repeat(254), 'me'], 'bad_origin', 'X-Nginx-Origin must be a pod name or IP'],
    [['tok', undefined, 'me', 'strict=1'], 'bad_query', 'strict must be true or false'],
  ];
  for (const [args, reason, error] of cases) t.same(parseCheckRequest(...args), { ok: false, reason, error }, error);
  t.equal(parseCheckRequest('tok', 'x'.repeat(253), 'me').ok, true, 'an origin of 253 characters is a DNS name at its longest');
});
