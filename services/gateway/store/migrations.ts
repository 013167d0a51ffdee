import { sql, type Kysely, type Migration } from "kysely";

// Frozen in time: never edit a migration that has shipped; add a new one.
export const gatewayMigrations: Record<string, Migration> = {
  "202611210930_api_keys": {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("api_keys")
        .addColumn("id", "text", (column) => column.primaryKey())
        // SHA-256 of the key: a leaked table does not leak usable keys.
        .addColumn("key_sha256", "text", (column) => column.notNull().unique())
        .addColumn("account_id", "text", (column) => column.notNull())
        .addColumn("label", "text", (column) => column.notNull().defaultTo(""))
        .addColumn("created_at", "timestamptz", (column) => column.notNull().defaultTo(sql`now()`))
        .addColumn("revoked_at", "timestamptz")
        .execute();
    },
  },
};
