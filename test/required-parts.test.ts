// A test whose real part is missing fails, naming the part (support/required.ts): a skip would
// let CI pass without testing anything. Shown on a copy of the built tree that lacks the built
// sidecar, so nothing of this checkout is hidden or changed: each file listed must fail there,
// with the part's name, and skip nothing.
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runTracked } from './support/processes.js';
import { repoRoot } from './support/repo-root.js';

/** Test files that need the built sidecar (the bundle, dist/bundle/apigw-syncer.mjs) before anything else. */
const NEED_THE_BUILT_SIDECAR = ['helm-termination.test.js'];

/** A copy of the repository's built tree (dist, the root marker, node_modules linked) without the bundle's entry. */
function treeWithoutMain(): string {
  const root = repoRoot();
  const dir = mkdtempSync(join(tmpdir(), 'apigw-required-'));
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
  rmSync(join(dir, 'dist', 'bundle', 'apigw-syncer.mjs'));
  mkdirSync(join(dir, 'test', 'tooling'), { recursive: true });
  copyFileSync(join(root, 'test', 'tooling', 'versions.env'), join(dir, 'test', 'tooling', 'versions.env'));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

t.test('without the built sidecar, the tests that need it fail and say so', async (t) => {
  const dir = treeWithoutMain();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const file of NEED_THE_BUILT_SIDECAR) {
    // Run as node runs it, without the NODE_OPTIONS tap gives this process.
    const { NODE_OPTIONS: _ignored, ...env } = process.env;
    const r = await runTracked(process.execPath, [join(dir, 'dist', 'test', file)], { env, timeoutMs: 60_000 });
    t.not(r.exit.code, 0, `${file} fails (${r.exit.code})`);
    t.match(r.stdout, /a part this test needs is missing: \S*dist\/bundle\/apigw-syncer\.mjs is not built/, `${file} names the missing part`);
    t.notMatch(r.stdout, /# SKIP/i, `${file} skips nothing`);
  }
});
