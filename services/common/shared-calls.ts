/**
 * Concurrent calls for the same key share one call: a burst of identical reads (an account's
 * many requests at once, a client's retry storm) costs one query instead of one each, and no
 * caller waits longer than its own call would have. Nothing is kept once the call settles, so a
 * caller never gets a read older than one that was already under way when it asked: as if it
 * had asked a moment sooner.
 */
export class SharedCalls<K, V> {
  readonly #pending = new Map<K, Promise<V>>();

  /** Calls under way. */
  get size(): number {
    return this.#pending.size;
  }

  /** The call under way for `key`, else `call()`, shared until it settles (a failure reaches every caller). */
  run(key: K, call: () => Promise<V>): Promise<V> {
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending;
    const started = call().finally(() => this.#pending.delete(key));
    this.#pending.set(key, started);
    return started;
  }
}
