import { sql, type Kysely } from "kysely";
import type { BillingSchema } from "./schema.ts";

// Each query returns the rows that break one invariant; an empty result everywhere means the
// whole ledger agrees with itself. Used by the property tests and the benchmark.
const CHECKS: { name: string; query: string }[] = [
  {
    name: "bucket granted = remaining + held + captured + expired + voided, nothing negative",
    query: `select id from billing_buckets where granted_mc <> remaining_mc + held_mc + captured_mc + expired_mc + voided_mc
      or remaining_mc < 0 or held_mc < 0 or captured_mc < 0 or expired_mc < 0 or voided_mc < 0`,
  },
  {
    name: "bucket remaining and held equal the sums of its ledger entries; granted equals its grant entry",
    query: `select b.id from billing_buckets b left join (
        select bucket_id, sum(remaining_delta_mc) r, sum(held_delta_mc) h, sum(case when kind = 'grant' then remaining_delta_mc else 0 end) g,
          count(*) filter (where kind = 'grant') grants
        from billing_ledger_entries where bucket_id is not null group by bucket_id) e on e.bucket_id = b.id
      where coalesce(e.r, 0) <> b.remaining_mc or coalesce(e.h, 0) <> b.held_mc or coalesce(e.g, 0) <> b.granted_mc or e.grants <> 1`,
  },
  {
    name: "bucket captured and expired equal the sums of their ledger entries",
    query: `select b.id from billing_buckets b left join (
        select bucket_id, -sum(held_delta_mc) filter (where kind = 'capture') c,
          -sum(remaining_delta_mc + held_delta_mc) filter (where kind = 'expire') x
        from billing_ledger_entries where bucket_id is not null group by bucket_id) e on e.bucket_id = b.id
      where coalesce(e.c, 0) <> b.captured_mc or coalesce(e.x, 0) <> b.expired_mc`,
  },
  {
    name: "bucket voided equals its refund entries; its refunds took what they record, and voided plus owed stays within what they asked",
    query: `select b.id from billing_buckets b
      left join (select bucket_id, -sum(remaining_delta_mc) v from billing_ledger_entries where kind = 'refund' group by bucket_id) e on e.bucket_id = b.id
      left join (select bucket_id, sum(refunded_mc) v, sum(requested_mc) q from billing_grant_refunds group by bucket_id) r on r.bucket_id = b.id
      where b.voided_mc <> coalesce(e.v, 0) or b.voided_mc < coalesce(r.v, 0) or b.voided_mc + b.owed_mc > coalesce(r.q, 0)`,
  },
  {
    name: "a refund's debt is only what open holds keep, and leaves nothing spendable while owed",
    query: `select id from billing_buckets where owed_mc < 0 or owed_mc > held_mc or (owed_mc > 0 and remaining_mc > 0)`,
  },
  {
    name: "credit account balances equal the sums of their ledger entries and of their buckets",
    query: `select c.id from billing_credit_accounts c
      left join (select credit_account_id, sum(remaining_delta_mc) r, sum(held_delta_mc) h,
          sum(held_delta_mc) filter (where bucket_id is null) oh
        from billing_ledger_entries group by credit_account_id) e on e.credit_account_id = c.id
      left join (select credit_account_id, sum(remaining_mc) r, sum(held_mc) h from billing_buckets group by credit_account_id) b
        on b.credit_account_id = c.id
      where c.remaining_mc <> coalesce(e.r, 0) or c.held_mc <> coalesce(e.h, 0) or c.overage_held_mc <> coalesce(e.oh, 0)
        or c.remaining_mc <> coalesce(b.r, 0) or c.held_mc <> coalesce(b.h, 0) + c.overage_held_mc
        or c.remaining_mc < 0 or c.held_mc < 0`,
  },
  {
    name: "bucket held equals the allocations of its open holds",
    query: `select b.id from billing_buckets b left join (
        select a.bucket_id, sum(a.amount_mc) held from billing_hold_allocations a join billing_holds h on h.id = a.hold_id
        where h.status = 'open' group by a.bucket_id) o on o.bucket_id = b.id
      where b.held_mc <> coalesce(o.held, 0)`,
  },
  {
    name: "open overage held equals the credit account's overage held",
    query: `select c.id from billing_credit_accounts c left join (
        select credit_account_id, sum(overage_mc) o from billing_holds where status = 'open' group by credit_account_id) h
        on h.credit_account_id = c.id where c.overage_held_mc <> coalesce(h.o, 0)`,
  },
  {
    name: "every hold's allocations and overage add up to its amount, and settle exactly once",
    query: `select h.id from billing_holds h left join (
        select hold_id, sum(amount_mc) a, sum(captured_mc) c, sum(returned_mc) r, sum(expired_mc) x,
          count(*) filter (where captured_mc + returned_mc + expired_mc = amount_mc) settled, count(*) n
        from billing_hold_allocations group by hold_id) a on a.hold_id = h.id
      where coalesce(a.a, 0) + h.overage_mc <> h.amount_mc
        or (h.status = 'open' and (coalesce(a.settled, 0) <> 0 or h.settled_at is not null))
        or (h.status <> 'open' and (coalesce(a.settled, 0) <> coalesce(a.n, 0) or h.settled_at is null
          or coalesce(a.c, 0) + h.captured_overage_mc <> h.captured_mc or coalesce(a.r, 0) <> h.returned_mc
          or coalesce(a.x, 0) <> h.expired_on_return_mc))
        or (h.status in ('released', 'expired') and h.captured_mc <> 0)`,
  },
  {
    name: "every hold has one reserve entry per allocation (plus one for overage)",
    query: `select h.id from billing_holds h
      left join (select hold_id, count(*) n from billing_hold_allocations group by hold_id) a on a.hold_id = h.id
      left join (select hold_id, count(*) n from billing_ledger_entries where kind in ('reserve', 'overage_reserve') group by hold_id) e
        on e.hold_id = h.id
      where coalesce(e.n, 0) <> coalesce(a.n, 0) + (case when h.overage_mc > 0 then 1 else 0 end)`,
  },
  {
    name: "pools never mix: a hold only draws on buckets of its own credit account",
    query: `select a.hold_id from billing_hold_allocations a join billing_holds h on h.id = a.hold_id
      join billing_buckets b on b.id = a.bucket_id where b.credit_account_id <> h.credit_account_id`,
  },
  {
    name: "nothing is spent before effective_at or after expires_at",
    query: `select a.hold_id from billing_hold_allocations a join billing_holds h on h.id = a.hold_id
      join billing_buckets b on b.id = a.bucket_id
      where h.created_at < b.effective_at or (b.expires_at is not null and h.created_at >= b.expires_at)`,
  },
  {
    name: "ledger entries belong to the credit account of their bucket and hold",
    query: `select e.id from billing_ledger_entries e left join billing_buckets b on b.id = e.bucket_id
      left join billing_holds h on h.id = e.hold_id
      where (b.id is not null and b.credit_account_id <> e.credit_account_id)
        or (h.id is not null and h.credit_account_id <> e.credit_account_id)`,
  },
];

export interface InvariantViolation {
  invariant: string;
  sample: unknown[];
  count: number;
}

/** Runs every ledger invariant over the whole database; returns the violations (none when healthy). */
export async function checkLedgerInvariants(db: Kysely<BillingSchema>): Promise<InvariantViolation[]> {
  const violations: InvariantViolation[] = [];
  for (const check of CHECKS) {
    const { rows } = await sql.raw<Record<string, unknown>>(check.query).execute(db);
    if (rows.length > 0) violations.push({ invariant: check.name, count: rows.length, sample: rows.slice(0, 5).map((row) => Object.values(row)[0]) });
  }
  return violations;
}
