// The shipped nginx snippets on a real (open-source) nginx: they parse, the lua token store
// answers like the Plus keyval location, and both policies turn every sidecar answer —
// including none at all — into what nginx-snippets/README.md promises. The sidecar here is a
// scripted fake, so these tests pin the nginx side alone; nginx-e2e.test.ts runs the real one.
import t from 'tap';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, http } from './support/net.js';
import {
  BACKEND_BODY,
  FAIL_OPEN_PATH,
  SNIPPETS_DIR,
  WAIT_STRICT_PATH,
  keyvalsUrl,
  nginxTest,
  preparePodDir,
  probe,
  removePodDir,
  renderPodConf,
  runRenderPodConf,
  startNginxPod,
  writeToken,
  type NginxPod,
} from './support/nginx.js';
import { livePids } from './support/processes.js';
import { waitFor } from './support/wait.js';

const PORT = 18080;

// ---- a scripted stand-in for the sidecar's GET /v1/synced ----------------------------------
// `answer` is what a plain check gets; a strict check (?strict=true) gets 403 instead of a 200
// whose verdict is not Synced, as from the real sidecar (sidecar/http/api-server.ts).

interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly bodyBytes: number;
}

interface FakeSidecar {
  readonly addr: string;
  readonly seen: SeenRequest[];
  answer: { status: number; tokenStatus?: string };
  close(): Promise<void>;
}

async function startFakeSidecar(port: number): Promise<FakeSidecar> {
  const seen: SeenRequest[] = [];
  const fake: { answer: { status: number; tokenStatus?: string } } = { answer: { status: 200, tokenStatus: 'Synced' } };
  const server: Server = createServer((req, res) => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => (bodyBytes += c.length));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes });
      const { tokenStatus } = fake.answer;
      const strict = new URL(req.url ?? '/', 'http://sidecar').searchParams.get('strict') === 'true';
      const status = strict && fake.answer.status === 200 && tokenStatus !== 'Synced' ? 403 : fake.answer.status;
      if (tokenStatus !== undefined) res.setHeader('X-Token-Status', tokenStatus);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ verdict: tokenStatus ?? null }));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    addr: `127.0.0.1:${port}`,
    seen,
    get answer() {
      return fake.answer;
    },
    set answer(a) {
      fake.answer = a;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---- config validity -------------------------------------------------------------------------

t.test('every OSS snippet passes nginx -t as the harness includes it', async (t) => {
  const layout = await preparePodDir({ name: 'syntax-pod', host: '127.0.2.2', port: PORT, sidecarAddr: '127.0.0.1:8080' });
  t.teardown(() => removePodDir(layout));
  const conf = await readFile(layout.confPath, 'utf8');
  for (const file of [
    'common/http.conf',
    'common/check-locations.conf',
    'common/policy-fail-open.conf',
    'common/policy-wait-strict.conf',
    'oss/token-store-http.conf',
    'oss/token-store-server.conf',
  ]) {
    t.match(conf, `include apigw-syncer/${file};`, `harness config includes ${file}`);
  }
  // sidecar-request.conf comes in through check-locations.conf; the per-pod file holds values
  // only (the pod name, the sidecar upstream), no server and nothing that listens.
  const podConf = await readFile(join(layout.prefix, 'apigw-pod.conf'), 'utf8');
  t.match(podConf, 'upstream apigw_syncer {');
  t.notMatch(podConf, /^\s*(server\s*\{|listen\b|include\b)/m, 'no server, listener or include in the per-pod file');
  await t.resolves(nginxTest(layout.confPath, layout.prefix), 'nginx -t accepts the pod config');
});

t.test('the OSS example nginx.conf passes nginx -t in the documented layout', async (t) => {
  // /etc/nginx/{nginx.conf, apigw-syncer/, apigw-pod.conf}, here in a temp dir with symlinks:
  // nginx resolves relative includes against the directory of the -c file itself.
  const conf = await mkdtemp(join(tmpdir(), 'apigw-nginx-example-'));
  t.teardown(() => rm(conf, { recursive: true, force: true }));
  await symlink(join(SNIPPETS_DIR, 'oss', 'nginx.conf'), join(conf, 'nginx.conf'));
  await symlink(SNIPPETS_DIR, join(conf, 'apigw-syncer'));
  await renderPodConf(join(conf, 'apigw-pod.conf'), { podName: 'apigw-7d9f8c-x2x4q', sidecarAddr: '127.0.0.1:8080' });
  await t.resolves(nginxTest(join(conf, 'nginx.conf'), conf), 'example config is valid');
});

t.test('Plus and OSS examples differ only in the token store and module/stream lines', async (t) => {
  const meaningful = (text: string): string[] =>
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
  const plus = meaningful(await readFile(join(SNIPPETS_DIR, 'plus', 'nginx.conf'), 'utf8'));
  const oss = meaningful(await readFile(join(SNIPPETS_DIR, 'oss', 'nginx.conf'), 'utf8'));
  const onlyPlus = plus.filter((l) => !oss.includes(l));
  const onlyOss = oss.filter((l) => !plus.includes(l));
  t.same(onlyPlus, [
    'include apigw-syncer/plus/zone-sync-stream.conf;',
    'include apigw-syncer/plus/token-store-http.conf;',
    'include apigw-syncer/plus/token-store-server.conf;',
  ]);
  t.same(onlyOss, [
    'load_module /usr/share/nginx/modules/ndk_http_module.so;',
    'load_module /usr/share/nginx/modules/ngx_http_lua_module.so;',
    'include apigw-syncer/oss/token-store-http.conf;',
    'include apigw-syncer/oss/token-store-server.conf;',
  ]);
  // Both stores expose the probe at the same path with the same zone name.
  for (const flavour of ['plus', 'oss']) {
    const server = await readFile(join(SNIPPETS_DIR, flavour, 'token-store-server.conf'), 'utf8');
    t.match(server, 'location = /apigw-syncer/probe {', `${flavour} probe location`);
    const httpConf = await readFile(join(SNIPPETS_DIR, flavour, 'token-store-http.conf'), 'utf8');
    t.match(httpConf, /apigw_tokens/, `${flavour} zone name`);
  }
});

t.test('render-pod-conf.sh refuses values that could inject config', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'apigw-render-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const run = (env: Record<string, string>): Promise<unknown> => runRenderPodConf(join(dir, 'pod.conf'), env);
  await t.rejects(run({ POD_NAME: 'x"; } server { listen 1; ' }), 'quote in pod name');
  await t.rejects(run({ POD_NAME: '' }), 'missing pod name');
  await t.rejects(run({ POD_NAME: 'ok', SYNCER_LISTEN_ADDR: '127.0.0.1:80; x' }), 'junk in sidecar address');
  await t.resolves(run({ POD_NAME: 'apigw-0', SYNCER_LISTEN_ADDR: '0.0.0.0:8080' }));
  const out = await readFile(join(dir, 'pod.conf'), 'utf8');
  t.match(out, 'default "apigw-0";');
  t.match(out, 'server 127.0.0.1:8080;', 'wildcard sidecar address is reached over loopback');
});

// ---- one running pod ------------------------------------------------------------------------

t.test('a running OSS pod', async (t) => {
  const sidecarPort = await freePort();
  const sidecar = await startFakeSidecar(sidecarPort);
  const pod: NginxPod = await startNginxPod({ name: 'snippet-pod', host: '127.0.2.2', port: PORT, sidecarAddr: sidecar.addr });
  t.teardown(async () => {
    await pod.stop();
    await sidecar.close();
    await removePodDir(pod);
  });
  const tokens: string[] = [];
  const newToken = (label: string): string => {
    const token = `tok-${label}-${Math.random().toString(36).slice(2)}`;
    tokens.push(token);
    return token;
  };
  const api = keyvalsUrl(pod.baseUrl);
  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

  await t.test('lua store: probe 401 before the write, 200 after', async (t) => {
    const token = newToken('probe');
    t.equal(await probe(pod.baseUrl, token), 401, 'unknown token');
    t.equal((await http(`${pod.baseUrl}/apigw-syncer/probe`)).status, 401, 'no token at all');
    await writeToken(pod.baseUrl, token);
    t.equal(await probe(pod.baseUrl, token), 200, 'known token');
    const res = await http(`${pod.baseUrl}/apigw-syncer/probe`, { headers: { authorization: `bearer   ${token}` } });
    t.equal(res.status, 200, 'scheme is case-insensitive, extra spaces allowed');
    t.equal(res.body, '', 'empty body, like `return 200;` on Plus');
    const got = await http(`${api}?key=${encodeURIComponent(token)}`);
    t.equal(got.status, 200);
    t.same(JSON.parse(got.body), { [token]: 'issued' }, 'GET ?key= reads it back like the Plus API');
    t.equal((await http(`${api}?key=nope`)).status, 404, 'unknown key → 404');
  });

  await t.test('lua store: bad bodies are rejected with 400 and change nothing', async (t) => {
    const before = await http(api);
    t.equal(before.status, 200);
    const good = newToken('partial');
    const bodies = [
      '{not json',
      '',
      '[]',
      '[1,2]',
      '{}',
      '"just a string"',
      '{"k": 5}',
      `{"${good}": "v", "bad": 5}`,
      `{"${good}": {"value": "v", "expire": -1}}`,
      '{"": "empty key"}',
      `{"${good}": null}`,
    ];
    for (const body of bodies) {
      const res = await http(api, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      t.equal(res.status, 400, `400 for ${JSON.stringify(body)}`);
      t.match(res.body, /"code":"KeyvalFormatError"/);
    }
    t.equal((await http(api)).body, before.body, 'store unchanged');
    t.equal(await probe(pod.baseUrl, good), 401, 'the valid half of a bad body was not written');
    t.equal((await http(`${pod.baseUrl}/api/9/http/keyvals/other_zone`, { method: 'POST', body: '{"a":"b"}' })).status, 404, 'unknown zone');
    t.equal((await http(api, { method: 'PUT', body: '{"a":"b"}' })).status, 405, 'unsupported method');
  });

  await t.test('lua store: POST adds once, PATCH updates and deletes, expire expires', async (t) => {
    const token = newToken('patch');
    await writeToken(pod.baseUrl, token);
    const again = await http(api, { method: 'POST', body: JSON.stringify({ [token]: 'x' }) });
    t.equal(again.status, 409, 'POST of an existing key → 409 KeyvalKeyExists');
    t.equal((await http(api, { method: 'PATCH', body: JSON.stringify({ [token]: 'y' }) })).status, 204);
    t.same(JSON.parse((await http(`${api}?key=${token}`)).body), { [token]: 'y' });
    t.equal((await http(api, { method: 'PATCH', body: JSON.stringify({ [token]: null }) })).status, 204);
    t.equal(await probe(pod.baseUrl, token), 401, 'PATCH null deleted it');
    const shortLived = newToken('expire');
    await writeToken(pod.baseUrl, shortLived, 'v', 150);
    t.equal(await probe(pod.baseUrl, shortLived), 200);
    await waitFor(async () => (await probe(pod.baseUrl, shortLived)) === 401, 'expiry', { timeoutMs: 3_000, intervalMs: 25 });
    t.pass('expired after its per-key expire');
  });

  await t.test('no bearer token: neither policy calls the sidecar, both serve', async (t) => {
    const calls = sidecar.seen.length;
    for (const path of [FAIL_OPEN_PATH, WAIT_STRICT_PATH]) {
      const res = await http(`${pod.baseUrl}${path}`);
      t.equal(res.status, 200, path);
      t.equal(res.body, BACKEND_BODY);
      t.equal(res.headers['x-token-status'], undefined, `${path}: no X-Token-Status`);
    }
    t.equal(sidecar.seen.length, calls, 'sidecar not called');
  });

  await t.test('what the sidecar receives', async (t) => {
    const token = newToken('headers');
    sidecar.answer = { status: 200, tokenStatus: 'Synced' };
    const calls = sidecar.seen.length;
    // A POST with a body to the protected location: the check must not carry it.
    await http(`${pod.baseUrl}${FAIL_OPEN_PATH}`, {
      method: 'POST',
      headers: { ...bearer(token), cookie: 'session=secret', 'content-type': 'text/plain' },
      body: 'x'.repeat(5000),
    });
    await http(`${pod.baseUrl}${WAIT_STRICT_PATH}`, { headers: { ...bearer(token), cookie: 'session=secret' } });
    const got = sidecar.seen.slice(calls);
    t.equal(got.length, 2, 'one check per policy');
    t.same(
      got.map((req) => req.url),
      ['/v1/synced', '/v1/synced?strict=true'],
      'fail-open asks plainly, wait-strict in strict mode',
    );
    for (const req of got) {
      t.equal(req.method, 'GET');
      t.equal(req.headers['x-auth-token'], token);
      t.equal(req.headers['x-nginx-origin'], 'snippet-pod', 'pod name from the per-pod file');
      t.equal(req.headers['authorization'], undefined, 'client Authorization not forwarded');
      t.equal(req.headers['cookie'], undefined, 'client cookies not forwarded');
      t.equal(req.bodyBytes, 0, 'no body');
      t.notOk(req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0', 'no content-length');
    }
  });

  const cases: Array<{ answer: { status: number; tokenStatus?: string }; label: string; status: string; strict: number }> = [
    { label: 'Synced', answer: { status: 200, tokenStatus: 'Synced' }, status: 'Synced', strict: 200 },
    { label: 'Partialy', answer: { status: 200, tokenStatus: 'Partialy' }, status: 'Partialy', strict: 503 },
    { label: 'NotSynced', answer: { status: 200, tokenStatus: 'NotSynced' }, status: 'NotSynced', strict: 503 },
    { label: 'Timeout', answer: { status: 200, tokenStatus: 'Timeout' }, status: 'Timeout', strict: 503 },
    { label: 'sidecar not ready (503)', answer: { status: 503 }, status: 'Unavailable', strict: 503 },
    { label: 'sidecar rejects the token (400)', answer: { status: 400 }, status: 'Unavailable', strict: 503 },
    { label: 'sidecar answers 403 without a verdict', answer: { status: 403 }, status: 'Unavailable', strict: 503 },
    { label: 'sidecar answers 401', answer: { status: 401 }, status: 'Unavailable', strict: 503 },
    { label: 'sidecar 500', answer: { status: 500 }, status: 'Unavailable', strict: 503 },
  ];
  for (const c of cases) {
    await t.test(`sidecar says ${c.label}`, async (t) => {
      sidecar.answer = c.answer;
      const token = newToken('verdict');
      const open = await http(`${pod.baseUrl}${FAIL_OPEN_PATH}`, { headers: bearer(token) });
      t.equal(open.status, 200, 'fail-open serves');
      t.equal(open.body, BACKEND_BODY);
      t.equal(open.headers['x-token-status'], c.status, 'fail-open passes the verdict on');
      const strict = await http(`${pod.baseUrl}${WAIT_STRICT_PATH}`, { headers: bearer(token) });
      t.equal(strict.status, c.strict, 'wait-strict status');
      t.equal(strict.headers['x-token-status'], c.status, 'wait-strict passes the verdict on');
      if (c.strict === 503) {
        t.equal(strict.headers['retry-after'], '1', 'Retry-After on 503');
        t.not(strict.body, BACKEND_BODY, 'backend not served');
      } else {
        t.equal(strict.body, BACKEND_BODY);
      }
    });
  }

  await t.test('sidecar down: fail-open serves, wait-strict answers 503', async (t) => {
    await sidecar.close();
    const token = newToken('down');
    const open = await http(`${pod.baseUrl}${FAIL_OPEN_PATH}`, { headers: bearer(token) });
    t.equal(open.status, 200);
    t.equal(open.body, BACKEND_BODY);
    t.equal(open.headers['x-token-status'], 'Unavailable');
    const strict = await http(`${pod.baseUrl}${WAIT_STRICT_PATH}`, { headers: bearer(token) });
    t.equal(strict.status, 503);
    t.equal(strict.headers['x-token-status'], 'Unavailable');
    t.equal(strict.headers['retry-after'], '1');
  });

  await t.test('no token in the access or error log', async (t) => {
    const logs = await pod.logs();
    t.ok(logs.length > 0, 'logs were written');
    for (const token of tokens) t.notMatch(logs, token, 'token absent from logs');
  });
});

t.test('no nginx left running', async (t) => {
  t.same(livePids(), [], 'every tracked process group has exited');
});
