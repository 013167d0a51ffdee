import type { Generated, Kysely, Selectable } from "kysely";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { CachedReads } from "../../common/cached-reads.ts";

export interface ApiKeyTable {
  id: string;
  key_sha256: string;
  account_id: string;
  /** The first name a key had (kept for keys made before `name`); `name` is what is shown. */
  label: string;
  name: Generated<string>;
  /** The billing member the key acts for; null: the account as a whole (its owner's rights). */
  member_id: string | null;
  key_prefix: Generated<string>;
  created_at: Generated<Date>;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

export interface GatewaySchema {
  api_keys: ApiKeyTable;
}

export interface ApiKeyOwner {
  keyId: string;
  accountId: string;
  /** The billing member the key acts for; undefined for an account-wide key. */
  memberId?: string;
}

export interface ApiKeyView {
  keyId: string;
  accountId: string;
  name: string;
  memberId: string | null;
  keyPrefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/** What every generated key starts with, so a leaked one is recognisable (secret scanners). */
export const API_KEY_PREFIX = "cl_";
/** Random bytes of a generated key: 24 bytes are 192 bits, 32 base64url characters. */
export const API_KEY_RANDOM_BYTES = 24;
/** Characters of a key kept in clear to tell keys apart: "cl_" and 4 random ones (24 of 192 bits). */
export const KEY_PREFIX_LENGTH = 7;
/** A key shorter than this (an operator's CUTLINE_API_KEY) keeps no prefix in clear at all. */
const KEY_LENGTH_FOR_PREFIX_MIN = 24;
/** last_used_at is written at most this often per key, in milliseconds: a busy key costs one UPDATE a minute. */
export const LAST_USED_WRITE_INTERVAL_MS = 60_000;
/** Keys whose last write time is remembered; past it, entries older than the interval are forgotten. */
const LAST_USED_MEMORY_MAX = 10_000;

function sha256(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

function view(row: Selectable<ApiKeyTable>): ApiKeyView {
  return {
    keyId: row.id,
    accountId: row.account_id,
    name: row.name,
    memberId: row.member_id,
    keyPrefix: row.key_prefix,
    createdAt: new Date(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : new Date(row.last_used_at),
    revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at),
  };
}

export interface ApiKeyStoreOptions {
  /** Milliseconds since the epoch. @default Date.now */
  now?: () => number;
  /** Told when a last-used write fails; the request that used the key is not. @default ignore */
  onLastUsedWriteFailed?: (error: unknown) => void;
  /**
   * How long a key's owner is kept after a lookup (ADMISSION_CACHE_MS); a revoke through this store
   * forgets every kept key at once, one through another replica applies within this. @default 0
   */
  ownerCacheMs?: number;
}

/** API keys, stored as hashes. A key is shown once, when it is created. */
export class ApiKeyStore {
  readonly #now: () => number;
  readonly #onLastUsedWriteFailed: (error: unknown) => void;
  /** When this process last wrote each key's last_used_at, in ms since the epoch. */
  readonly #lastUsedWrittenAt = new Map<string, number>();
  readonly #pendingWrites = new Set<Promise<void>>();
  /** Keys found (not misses) kept for ownerCacheMs; a burst's concurrent lookups of a key share one query. */
  readonly #lookups: CachedReads<string, { id: string; account_id: string; member_id: string | null } | undefined>;

  constructor(
    private readonly db: Kysely<GatewaySchema>,
    options: ApiKeyStoreOptions = {},
  ) {
    this.#now = options.now ?? Date.now;
    this.#onLastUsedWriteFailed = options.onLastUsedWriteFailed ?? (() => undefined);
    this.#lookups = new CachedReads({ ttlMs: options.ownerCacheMs ?? 0, keep: (row) => row !== undefined });
  }

  /** Stores `key` (or a new random one) for the account; an existing identical key is kept. */
  async create(
    accountId: string,
    options: { key?: string; label?: string; name?: string; memberId?: string } = {},
  ): Promise<{ key: string; keyId: string }> {
    const key = options.key ?? `${API_KEY_PREFIX}${randomBytes(API_KEY_RANDOM_BYTES).toString("base64url")}`;
    const keyId = `key_${randomUUID()}`;
    const name = options.name ?? options.label ?? "";
    await this.db
      .insertInto("api_keys")
      .values({
        id: keyId,
        key_sha256: sha256(key),
        account_id: accountId,
        label: options.label ?? name,
        name,
        member_id: options.memberId ?? null,
        key_prefix: key.length >= KEY_LENGTH_FOR_PREFIX_MIN ? key.slice(0, KEY_PREFIX_LENGTH) : "",
        last_used_at: null,
        revoked_at: null,
      })
      .onConflict((conflict) => conflict.column("key_sha256").doNothing())
      .execute();
    const owner = await this.find(key, { recordUse: false });
    if (!owner || owner.accountId !== accountId) throw new Error("API key already belongs to another account");
    return { key, keyId: owner.keyId };
  }

  /** The key's owner when it exists and is not revoked; records the use (at most once a minute, not awaited). */
  async find(key: string, options: { recordUse?: boolean } = {}): Promise<ApiKeyOwner | undefined> {
    const keySha256 = sha256(key);
    // A key's burst of requests (or a retry storm) looks it up once.
    const row = await this.#lookups.get(keySha256, () =>
      this.db.selectFrom("api_keys").select(["id", "account_id", "member_id"]).where("key_sha256", "=", keySha256).where("revoked_at", "is", null).executeTakeFirst(),
    );
    if (!row) return undefined;
    if (options.recordUse ?? true) this.#recordUse(row.id);
    return { keyId: row.id, accountId: row.account_id, memberId: row.member_id ?? undefined };
  }

  async get(keyId: string): Promise<ApiKeyView | undefined> {
    const row = await this.db.selectFrom("api_keys").selectAll().where("id", "=", keyId).executeTakeFirst();
    return row ? view(row) : undefined;
  }

  /** The account's keys that are not revoked (one member's when given), newest first, at most `limit`. */
  async listActive(accountId: string, options: { memberId?: string; limit: number }): Promise<ApiKeyView[]> {
    let query = this.db.selectFrom("api_keys").selectAll().where("account_id", "=", accountId).where("revoked_at", "is", null);
    if (options.memberId !== undefined) query = query.where("member_id", "=", options.memberId);
    const rows = await query.orderBy("created_at", "desc").orderBy("id", "desc").limit(options.limit).execute();
    return rows.map(view);
  }

  async countActive(accountId: string): Promise<number> {
    const row = await this.db
      .selectFrom("api_keys")
      .select((eb) => eb.fn.countAll<string>().as("count"))
      .where("account_id", "=", accountId)
      .where("revoked_at", "is", null)
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  /** Revokes the key (a revoked key stays revoked, with its first time); undefined when there is no such key. */
  async revoke(keyId: string): Promise<ApiKeyView | undefined> {
    await this.db.updateTable("api_keys").set({ revoked_at: new Date(this.#now()) }).where("id", "=", keyId).where("revoked_at", "is", null).execute();
    // Kept owners are keyed by the key's hash, which is not known here: revocations are rare, so all go.
    this.#lookups.clear();
    return this.get(keyId);
  }

  /** Resolves once every last-used write started so far has ended (tests, shutdown). */
  async flushLastUsed(): Promise<void> {
    await Promise.all([...this.#pendingWrites]);
  }

  // Off the request path: the caller never waits for this write, and a key used a thousand times a
  // minute costs one UPDATE. Each gateway process throttles on its own, so N replicas write N times.
  #recordUse(keyId: string): void {
    const now = this.#now();
    const writtenAt = this.#lastUsedWrittenAt.get(keyId);
    if (writtenAt !== undefined && now - writtenAt < LAST_USED_WRITE_INTERVAL_MS) return;
    if (this.#lastUsedWrittenAt.size >= LAST_USED_MEMORY_MAX) this.#forgetOldWrites(now);
    this.#lastUsedWrittenAt.set(keyId, now);
    const write = this.db
      .updateTable("api_keys")
      .set({ last_used_at: new Date(now) })
      .where("id", "=", keyId)
      .execute()
      .then(
        () => undefined,
        (error: unknown) => this.#onLastUsedWriteFailed(error),
      )
      .finally(() => this.#pendingWrites.delete(write));
    this.#pendingWrites.add(write);
  }

  #forgetOldWrites(now: number): void {
    for (const [keyId, writtenAt] of this.#lastUsedWrittenAt) {
      if (now - writtenAt >= LAST_USED_WRITE_INTERVAL_MS) this.#lastUsedWrittenAt.delete(keyId);
    }
    // Every entry is recent (more than LAST_USED_MEMORY_MAX keys used within a minute): start over,
    // costing at most one extra write per key.
    if (this.#lastUsedWrittenAt.size >= LAST_USED_MEMORY_MAX) this.#lastUsedWrittenAt.clear();
  }
}
