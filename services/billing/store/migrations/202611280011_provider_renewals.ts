// Frozen in time. Who grants a cycle's subscription credits (issue 11): 'ledger' (billing, at
// renewal; every account so far) or 'provider' (a payment provider's paid invoice, GrantCycle),
// so an account Stripe bills is never granted twice for one cycle, once by each. Each paid
// invoice is kept with the cycle it paid for, so a replay of it grants nothing however late.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table billing_accounts add column renewals text not null default 'ledger' check (renewals in ('ledger', 'provider'))`.execute(db);
  await sql`create table billing_cycle_grants (
    account_id text not null references billing_accounts (account_id),
    invoice_key text not null,
    cycle_index integer not null check (cycle_index >= 0),
    bucket_id bigint references billing_buckets (id),
    occurred_at timestamptz not null,
    primary key (account_id, invoice_key)
  )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table billing_cycle_grants`.execute(db);
  await sql`alter table billing_accounts drop column renewals`.execute(db);
}
