// The README is the front door: its configuration table, commands and CI entry must stay true.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { VARIABLES } from '../sidecar/config.js';
import { repoRoot } from './support/repo-root.js';

const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');

t.test('the configuration table lists exactly the variables the program reads, with their defaults', async (t) => {
  const rows = new Map<string, string>();
  for (const m of readme.matchAll(/^\| `([A-Z_]+)` \| (.*?) \| (.*?) \|$/gm)) rows.set(m[1]!, m[2]!.replace(/`/g, ''));
  t.same([...rows.keys()].sort(), Object.keys(VARIABLES).sort());
  for (const [name, v] of Object.entries(VARIABLES)) t.equal(rows.get(name), v.default, `${name} default`);
});

t.test('CI runs exactly the README test command', async (t) => {
  t.match(readme, /npm ci && npm test /);
  t.match(readme, /npm ci && npm run demo /);
  t.match(readFileSync(join(repoRoot(), '.ci', 'run'), 'utf8'), /^npm ci && npm test\b/m);
});
