import { sql, type Kysely, type Migration } from "kysely";
import type { ServiceMigrations } from "../../common/migrate.ts";

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
  // Keys per member, each with a name, a short prefix to tell them apart in listings, and when it
  // was last used (written at most once a minute per key, off the request path).
  "202611271600_api_key_members": {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("api_keys").addColumn("name", "text", (column) => column.notNull().defaultTo("")).execute();
      await db.schema.alterTable("api_keys").addColumn("member_id", "text").execute();
      await db.schema.alterTable("api_keys").addColumn("key_prefix", "text", (column) => column.notNull().defaultTo("")).execute();
      await db.schema.alterTable("api_keys").addColumn("last_used_at", "timestamptz").execute();
      await db.updateTable("api_keys").set({ name: sql`label` }).execute();
      await db.schema.createIndex("api_keys_account_id").on("api_keys").columns(["account_id", "created_at"]).execute();
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
  "202611271730_monthly_calls": {
    async up(db: Kysely<any>) {
      // Calls per account per billing cycle, against the plan's monthly quota (monthly-call.store.ts).
      await db.schema
        .createTable("gateway_monthly_calls")
        .addColumn("account_id", "text", (column) => column.notNull())
        .addColumn("cycle_started_at", "timestamptz", (column) => column.notNull())
        .addColumn("calls", "bigint", (column) => column.notNull().check(sql`calls > 0`))
        .addPrimaryKeyConstraint("gateway_monthly_calls_pkey", ["account_id", "cycle_started_at"])
        .execute();
    },
  },
  "202611272120_payments": {
    async up(db: Kysely<any>) {
      // The payment provider's customer per account, and the subscription it pays for (payment.store.ts).
      await db.schema
        .createTable("payment_customers")
        .addColumn("account_id", "text", (column) => column.primaryKey())
        .addColumn("provider", "text", (column) => column.notNull())
        .addColumn("customer_id", "text", (column) => column.notNull().unique())
        .addColumn("subscription_id", "text")
        // The start of the first billing cycle the subscription pays for: earlier cycles' overage is not the provider's to bill.
        .addColumn("subscribed_at", "timestamptz")
        // The last closed billing cycle whose overage was reconciled with the provider (billing's cycle index).
        .addColumn("overage_cycle_index_done", "int4", (column) => column.notNull().defaultTo(-1))
        .addColumn("created_at", "timestamptz", (column) => column.notNull().defaultTo(sql`now()`))
        .execute();
      // Provider events by id: claimed before their ledger operations, done after. A replay of a
      // done event moves nothing; a claim left by a crash is taken over after a while.
      await db.schema
        .createTable("payment_events")
        .addColumn("event_id", "text", (column) => column.primaryKey())
        .addColumn("kind", "text", (column) => column.notNull())
        .addColumn("claimed_at", "timestamptz", (column) => column.notNull())
        .addColumn("done_at", "timestamptz")
        .execute();
      // One-off payments (packs), so a refund finds the credits it paid for.
      await db.schema
        .createTable("payment_purchases")
        .addColumn("payment_id", "text", (column) => column.primaryKey())
        .addColumn("account_id", "text", (column) => column.notNull())
        .addColumn("product_code", "text", (column) => column.notNull())
        .addColumn("bucket_id", "text", (column) => column.notNull())
        .addColumn("amount_minor", "bigint", (column) => column.notNull())
        .addColumn("currency", "text", (column) => column.notNull())
        .addColumn("refunded_minor", "bigint", (column) => column.notNull().defaultTo(0))
        // Set by a refund: the credits stay in the append-only ledger; the operator reviews the account.
        .addColumn("refund_flagged_at", "timestamptz")
        .addColumn("created_at", "timestamptz", (column) => column.notNull().defaultTo(sql`now()`))
        .execute();
      // Overage already reported to the provider per account and billing cycle (by the cycle's start).
      await db.schema
        .createTable("payment_overage_reports")
        .addColumn("account_id", "text", (column) => column.notNull())
        .addColumn("cycle_started_at", "timestamptz", (column) => column.notNull())
        .addColumn("reported_millicredits", "bigint", (column) => column.notNull())
        // A total being reported now: claimed before the provider is called, so two gateways never
        // send overlapping amounts; one left by a crash is sent again (same identifier) once stale.
        .addColumn("pending_millicredits", "bigint")
        .addColumn("pending_since", "timestamptz")
        .addPrimaryKeyConstraint("payment_overage_reports_pkey", ["account_id", "cycle_started_at"])
        .execute();
    },
  },
  // The per-minute token bucket of each account, shared by every gateway replica (RequestRateStore):
  // one row per account, taken with one upsert on the database's clock. Unlogged: a take writes no
  // WAL and waits for no fsync (it sits on every request), and what a crash loses is only how full
  // the buckets were: they start full again, as a minute's idle would leave them.
  "202611280040_request_rate_buckets": {
    async up(db: Kysely<any>) {
      await sql`
        create unlogged table gateway_request_rates (
          account_id text primary key,
          tokens float8 not null,
          refilled_at_ms float8 not null,
          admitted boolean not null
        )`.execute(db);
    },
  },
};

/** The gateway's migrations for the shared runner (services/common/migrate.ts). */
export const gatewayMigrationSet: ServiceMigrations = { service: "gateway", migrations: gatewayMigrations };
