// The URL helpers of respond.ts: a request's path and query, with or without either.
import t from 'tap';
import { pathOf, queryOf } from '../sidecar/http/respond.js';

t.test('path and query of a request URL', async (t) => {
  t.same([pathOf('/v1/synced?strict=true'), queryOf('/v1/synced?strict=true')], ['/v1/synced', 'strict=true']);
  t.same([pathOf('/v1/synced'), queryOf('/v1/synced')], ['/v1/synced', '']);
  t.same([pathOf('/v1/synced?'), queryOf('/v1/synced?')], ['/v1/synced', ''], 'a bare "?" is an empty query');
  t.same([pathOf('/a?b?c'), queryOf('/a?b?c')], ['/a', 'b?c'], 'the first "?" starts the query');
  t.same([pathOf(undefined), queryOf(undefined)], ['/', ''], 'no URL at all: the root, no query');
});
