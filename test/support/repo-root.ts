// The repository root, found from this file's location so it works both from test/ (sources)
// and from dist/test/ (what the suite runs).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A file only the repository root holds: the test tools' version pins. */
const MARKER = join('test', 'tooling', 'versions.env');

let cached: string | undefined;

/** The first ancestor of this file holding test/tooling/versions.env. */
export function repoRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, MARKER))) return (cached = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find ${MARKER} above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}
