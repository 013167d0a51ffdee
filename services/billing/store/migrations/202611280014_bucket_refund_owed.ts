// Frozen in time. What a refund asked of a bucket but could not take (credits a running job
// held) is owed: billing_settle voids up to that much of what a release, expiry or short capture
// gives back to the bucket, so a refunded payment's credits never become spendable again.
// Refunds booked before this column owe what they asked minus what they took.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_buckets add column owed_mc bigint not null default 0 check (owed_mc >= 0)`.execute(db);
  await sql`update billing_buckets b set owed_mc = r.owed from (
      select bucket_id, sum(requested_mc - refunded_mc) owed from billing_grant_refunds group by bucket_id) r
    where r.bucket_id = b.id`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_buckets drop column owed_mc`.execute(db);
}
