// Frozen in time. A refunded payment takes back the credits it granted (issue 11): the bucket's
// unspent credits move to voided_mc with a `refund` ledger entry each, and every refund is kept
// by its idempotency key with what it asked for and what it took, so a replayed refund takes
// nothing more and later partial refunds of one payment know what earlier ones asked.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_ledger_entries drop constraint billing_ledger_entries_kind_check`.execute(db);
  await sql`alter table billing_ledger_entries add constraint billing_ledger_entries_kind_check check (kind in ('grant', 'reserve',
    'capture', 'release', 'expire', 'void', 'extend', 'refund', 'overage_reserve', 'overage_capture', 'overage_release'))`.execute(db);
  await sql`create table billing_grant_refunds (
    credit_account_id bigint not null references billing_credit_accounts (id),
    refund_key text not null,
    bucket_id bigint not null references billing_buckets (id),
    requested_mc bigint not null check (requested_mc >= 0),
    refunded_mc bigint not null check (refunded_mc >= 0 and refunded_mc <= requested_mc),
    occurred_at timestamptz not null,
    primary key (credit_account_id, refund_key)
  )`.execute(db);
  await sql`create index billing_grant_refunds_by_bucket on billing_grant_refunds (bucket_id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // The kind check keeps `refund`: ledger entries are append-only, so refund entries booked since stay.
  await sql`drop table billing_grant_refunds`.execute(db);
}
