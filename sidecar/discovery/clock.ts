// Time as a dependency of discovery: the reflector's watchdog, backoff sleeps, resync timer and
// the DNS interval read it, so tests can drive them without waiting.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};
