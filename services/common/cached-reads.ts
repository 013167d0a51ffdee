/**
 * Reads kept for a short while: a value read once answers every caller for `ttlMs`, and
 * concurrent callers share one read: a burst of identical reads (an account's many requests at
 * once, a client's retry storm) costs one query, and no caller waits longer than its own read
 * would have. With `ttlMs` 0 nothing is kept once a read settles. For data read on every request and
 * changed rarely (an account's plan and members at admission), so that a call costs no query for
 * it. `forget` drops a key at once: this process's own changes are seen by the next read, and
 * a read already under way when the change happened is neither kept nor shared after it.
 * Changes made elsewhere (another replica) are seen within `ttlMs`.
 */
export class CachedReads<K, V> {
  readonly #kept = new Map<K, { value: V; until: number }>();
  /** Reads under way; one that `forget` met is taken out, and its answer is not kept. */
  readonly #pending = new Map<K, { read: Promise<V>; forgotten: boolean }>();
  readonly #ttlMs: number;
  readonly #entriesMax: number;
  readonly #now: () => number;
  readonly #worthKeeping: (value: V) => boolean;

  /** `keep` says which values are kept (say, not a lookup's miss, which a made-up key would fill the memory with). @default every value */
  constructor(options: { ttlMs: number; entriesMax?: number; now?: () => number; keep?: (value: V) => boolean }) {
    this.#ttlMs = options.ttlMs;
    this.#entriesMax = options.entriesMax ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#worthKeeping = options.keep ?? (() => true);
  }

  /** Reads under way. */
  get pendingReads(): number {
    return this.#pending.size;
  }

  /** The kept value of `key` while fresh, else the read under way, else `read()` (kept once it answers; a failure is not kept). */
  get(key: K, read: () => Promise<V>): Promise<V> {
    const kept = this.#kept.get(key);
    if (kept !== undefined && kept.until > this.#now()) return Promise.resolve(kept.value);
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending.read;
    const entry: { read: Promise<V>; forgotten: boolean } = { read: Promise.resolve(undefined as V), forgotten: false };
    entry.read = read().then(
      (value) => {
        if (this.#pending.get(key) === entry) this.#pending.delete(key);
        if (!entry.forgotten && this.#ttlMs > 0 && this.#worthKeeping(value)) this.#keep(key, value);
        return value;
      },
      (error: unknown) => {
        if (this.#pending.get(key) === entry) this.#pending.delete(key);
        throw error;
      },
    );
    this.#pending.set(key, entry);
    return entry.read;
  }

  /** Drops what is kept for `key`; a read under way is not kept, and the next caller reads again. */
  forget(key: K): void {
    this.#kept.delete(key);
    const pending = this.#pending.get(key);
    if (pending !== undefined) {
      pending.forgotten = true;
      this.#pending.delete(key);
    }
  }

  /** Forgets every key (a change whose keys are not known here, such as a revoked API key's hash). */
  clear(): void {
    this.#kept.clear();
    for (const pending of this.#pending.values()) pending.forgotten = true;
    this.#pending.clear();
  }

  #keep(key: K, value: V): void {
    const now = this.#now();
    if (this.#kept.size >= this.#entriesMax) {
      for (const [candidate, entry] of this.#kept) if (entry.until <= now) this.#kept.delete(candidate);
      // Every entry is fresh: start over (each key then costs one more read).
      if (this.#kept.size >= this.#entriesMax) this.#kept.clear();
    }
    this.#kept.set(key, { value, until: now + this.#ttlMs });
  }
}
