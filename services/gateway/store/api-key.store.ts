import type { Generated, Kysely } from "kysely";
import { createHash, randomBytes, randomUUID } from "node:crypto";

export interface ApiKeyTable {
  id: string;
  key_sha256: string;
  account_id: string;
  label: string;
  created_at: Generated<Date>;
  revoked_at: Date | null;
}

export interface GatewaySchema {
  api_keys: ApiKeyTable;
}

export interface ApiKeyOwner {
  keyId: string;
  accountId: string;
}

function sha256(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** API keys, stored as hashes. A key is shown once, when it is created. */
export class ApiKeyStore {
  constructor(private readonly db: Kysely<GatewaySchema>) {}

  /** Stores `key` (or a new random one) for the account; an existing identical key is kept. */
  async create(accountId: string, options: { key?: string; label?: string } = {}): Promise<{ key: string; keyId: string }> {
    const key = options.key ?? `cl_${randomBytes(24).toString("base64url")}`;
    const keyId = `key_${randomUUID()}`;
    await this.db
      .insertInto("api_keys")
      .values({ id: keyId, key_sha256: sha256(key), account_id: accountId, label: options.label ?? "", revoked_at: null })
      .onConflict((conflict) => conflict.column("key_sha256").doNothing())
      .execute();
    const owner = await this.find(key);
    if (!owner || owner.accountId !== accountId) throw new Error("API key already belongs to another account");
    return { key, keyId: owner.keyId };
  }

  async find(key: string): Promise<ApiKeyOwner | undefined> {
    const row = await this.db
      .selectFrom("api_keys")
      .select(["id", "account_id"])
      .where("key_sha256", "=", sha256(key))
      .where("revoked_at", "is", null)
      .executeTakeFirst();
    return row ? { keyId: row.id, accountId: row.account_id } : undefined;
  }
}
