// What the guarded entry points report (sidecar/unexpected.ts), collected for one test.
import { onUnexpected, type UnexpectedError } from '../../sidecar/unexpected.js';

/** Every report until the test ends, in order. */
export function captureUnexpected(t: { teardown(fn: () => void): void }): UnexpectedError[] {
  const reports: UnexpectedError[] = [];
  t.teardown(onUnexpected((report) => reports.push(report)));
  return reports;
}
