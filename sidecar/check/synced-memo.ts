// Remembers which checks were answered Synced a moment ago, so a repeat check costs a lookup
// instead of a fan-out. Keys are checkKey digests, never tokens. One TTL for every entry makes
// insertion order the expiry order: the Map's first entries are always the oldest, so expiry
// and eviction both work from the front, in O(1) per entry.

export class SyncedMemo {
  private readonly entries = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** True while `key` was remembered less than ttlMs ago. */
  has(key: string): boolean {
    const expiresAt = this.entries.get(key);
    if (expiresAt === undefined) return false;
    if (expiresAt > this.now()) return true;
    this.entries.delete(key);
    return false;
  }

  /** With a TTL of 0 nothing stays: the entry has expired on insertion and is dropped at once. */
  remember(key: string): void {
    const now = this.now();
    // Re-inserted, so the entry moves to the back with its new expiry.
    this.entries.delete(key);
    this.entries.set(key, now + this.ttlMs);
    this.dropExpired(now);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** Forgets everything (the peer set gained a peer: old verdicts did not ask it). */
  clear(): void {
    this.entries.clear();
  }

  private dropExpired(now: number): void {
    for (const [key, expiresAt] of this.entries) {
      if (expiresAt > now) return;
      this.entries.delete(key);
    }
  }
}
