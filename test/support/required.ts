// A test that needs a real part (nginx, the built sidecar, the control plane, helm) fails when the
// part is missing, naming it and how to get it: a skip would let CI pass without testing anything.

/** Throws `missing` (a "why it cannot run" from nginxMissing, podsMissing…) unless it is undefined. */
export function requirePart(missing: string | undefined): void {
  if (missing !== undefined) throw new Error(`a part this test needs is missing: ${missing}`);
}
