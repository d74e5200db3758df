// A machine-wide lock between test files: tap runs two files at once, and a test that measures
// time under load (a burst of 1,000 checks, the bench) must not share two cores with another
// such test. mkdir is atomic; the owner's pid is kept beside, so a lock left by a killed run
// is taken over instead of waited on.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExitCleanup } from './processes.js';
import { waitFor } from './wait.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryTake(dir: string): boolean {
  try {
    mkdirSync(dir);
  } catch {
    const owner = Number(readFileSync(join(dir, 'pid'), { encoding: 'utf8', flag: 'a+' }) || NaN);
    if (Number.isFinite(owner) && alive(owner)) return false;
    // Left by a process that is gone (or not written yet by one that just took it: then the
    // next round sees its pid). Take it over.
    if (!Number.isFinite(owner)) return false;
    rmSync(dir, { recursive: true, force: true });
    return tryTake(dir);
  }
  writeFileSync(join(dir, 'pid'), String(process.pid));
  return true;
}

/** Waits (bounded by timeoutMs) until this process holds the lock `name`; resolves with its release. */
export async function exclusive(name: string, timeoutMs = 15 * 60_000): Promise<() => void> {
  const dir = join(tmpdir(), `apigw-syncer-lock-${name}`);
  await waitFor(() => tryTake(dir), `the ${name} lock (${dir})`, { timeoutMs, intervalMs: 100 });
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    rmSync(dir, { recursive: true, force: true });
  };
  onExitCleanup(release);
  return release;
}
