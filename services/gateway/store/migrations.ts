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
  "202611271710_batches": {
    async up(db: Kysely<any>) {
      // A batch is the API's grouping of independent jobs: each item is its own job (its own hold
      // and idempotency key), or the refusal that kept it from becoming one, which the orchestrator
      // never sees. So the gateway keeps the grouping, and the orchestrator only the jobs.
      await db.schema
        .createTable("batches")
        .addColumn("id", "text", (column) => column.primaryKey())
        .addColumn("account_id", "text", (column) => column.notNull())
        .addColumn("idempotency_key", "text", (column) => column.notNull())
        // SHA-256 of every item's image and the options: a replayed key with other content is refused.
        .addColumn("request_fingerprint", "text", (column) => column.notNull())
        .addColumn("item_count", "int4", (column) => column.notNull())
        .addColumn("created_at", "timestamptz", (column) => column.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint("batches_account_idempotency_key", ["account_id", "idempotency_key"])
        .execute();
      await db.schema
        .createTable("batch_items")
        .addColumn("batch_id", "text", (column) => column.notNull().references("batches.id").onDelete("cascade"))
        .addColumn("item_index", "int4", (column) => column.notNull())
        .addColumn("job_id", "text")
        .addColumn("error_code", "text")
        .addColumn("error_title", "text")
        .addPrimaryKeyConstraint("batch_items_pkey", ["batch_id", "item_index"])
        .addCheckConstraint("batch_items_job_or_error", sql`(job_id is null) <> (error_code is null)`)
        .execute();
    },
  },
};
