// One resource's objects as the last list and the watch events since then left them: the
// store half of client-go's reflector/store split. The list-watch loop (reflector.ts) writes
// through ReflectorStore; discovery reads items() and synced, and is told of every change.
import { reportUnexpected } from '../../unexpected.js';
import type { Meta } from './objects.js';

/** What the list-watch loop writes into. */
export interface ReflectorStore<T> {
  /** A complete list replaces every object at once (readers never see half a list); synced from now on. Returns how many objects differed. */
  replace(items: Iterable<T>): number;
  /** An ADDED or MODIFIED event. */
  upsert(item: T): void;
  /** A DELETED event. */
  remove(name: string): void;
  /** The objects no longer answer what is asked (a new selector, or history lost): not synced until the next replace. */
  invalidate(): void;
}

export class ObjectCache<T extends { readonly metadata: Meta }> implements ReflectorStore<T> {
  private readonly objects = new Map<string, T>();
  private listed = false;

  /** @param changed called after every change, so the reader can recompute. */
  constructor(private readonly changed: () => void) {}

  /** A complete list is stored and nothing invalidated it since. */
  get synced(): boolean {
    return this.listed;
  }

  /** The objects, in no particular order. */
  items(): IterableIterator<T> {
    return this.objects.values();
  }

  replace(items: Iterable<T>): number {
    const fresh = new Map<string, T>();
    for (const item of items) fresh.set(item.metadata.name, item);
    let differed = 0;
    for (const [name, item] of fresh) if (this.objects.get(name)?.metadata.resourceVersion !== item.metadata.resourceVersion) differed++;
    for (const name of this.objects.keys()) if (!fresh.has(name)) differed++;
    this.objects.clear();
    for (const [name, item] of fresh) this.objects.set(name, item);
    this.listed = true;
    this.tell();
    return differed;
  }

  upsert(item: T): void {
    this.objects.set(item.metadata.name, item);
    this.tell();
  }

  remove(name: string): void {
    if (this.objects.delete(name)) this.tell();
  }

  invalidate(): void {
    this.listed = false;
  }

  /** The reader's failure to react is its own: the objects are stored, and the loop goes on. */
  private tell(): void {
    try {
      this.changed();
    } catch (err) {
      reportUnexpected('event', 'a reader of the object cache', err);
    }
  }
}
