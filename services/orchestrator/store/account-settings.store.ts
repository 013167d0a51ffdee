import type { Kysely } from "kysely";
import type { OrchestratorSchema } from "./job.store.ts";

/** An account's settings as stored; a field unset means the default applies. */
export interface StoredAccountSettings {
  retentionHours: number | undefined;
}

/** The account_settings table: one row per account that changed a default. */
export class AccountSettingsStore {
  constructor(private readonly db: Kysely<OrchestratorSchema>) {}

  async get(accountId: string): Promise<StoredAccountSettings> {
    const row = await this.db.selectFrom("account_settings").select("retention_hours").where("account_id", "=", accountId).executeTakeFirst();
    return { retentionHours: row?.retention_hours };
  }

  async setRetentionHours(accountId: string, retentionHours: number): Promise<void> {
    await this.db
      .insertInto("account_settings")
      .values({ account_id: accountId, retention_hours: retentionHours })
      .onConflict((conflict) => conflict.column("account_id").doUpdateSet({ retention_hours: retentionHours, updated_at: new Date() }))
      .execute();
  }
}
