// Frozen in time. Spend order is now soonest expiry first, whatever the kind (issue 11); the
// reserve scan orders by (expires_at nulls last, priority, created_at, id), so the index that
// served the old order (priority first) is replaced by one in the new order.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists billing_buckets_spendable`.execute(db);
  await sql`create index billing_buckets_spend_order on billing_buckets (credit_account_id, expires_at nulls last, priority, created_at, id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists billing_buckets_spend_order`.execute(db);
  await sql`create index billing_buckets_spendable on billing_buckets (credit_account_id, priority, expires_at, created_at, id)`.execute(db);
}
