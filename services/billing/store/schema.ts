import type { ColumnType, Generated, Kysely, Transaction } from "kysely";

// int8 arrives as a JS number in both modes (see services/common/database.ts).
type Timestamp = ColumnType<Date, Date | string, Date | string>;

export interface PlanTable {
  code: string;
  name: string;
  monthly_price_cents: number;
  credits_per_cycle_mc: number;
  rollover_cycles: number;
  on_exhausted: "stop" | "overage";
  overage_rate_cents_per_credit: number;
  overage_cap_mc: number;
  requests_per_minute: number;
  concurrency: number;
  monthly_calls: number;
  max_upload_bytes: number;
  longest_side_pixels: number;
  priority_lane: "high" | "normal";
  seats: number;
  /** False for plans an operator assigns but does not offer (the "unlimited" test plan, plans the plans file dropped). */
  listed: Generated<boolean>;
  plan_class: Generated<"standard" | "pro">;
  pool: Generated<"api" | "web">;
  term_months: Generated<number>;
  credits_valid_days: Generated<number>;
  video_seconds_max: Generated<number>;
  video_bytes_max: Generated<number>;
  video_longest_side_pixels: Generated<number>;
  stripe_price_id: string | null;
  /** The sign-up trial the plan gives (the free plan's is every sign-up's); 0: none. */
  trial_mc: Generated<number>;
  trial_days: Generated<number>;
}

export interface PackTable {
  code: string;
  price_cents: number;
  credits_mc: number;
  /** False for packs the plans file no longer sells; kept for the grants that name them. */
  listed: Generated<boolean>;
  stripe_price_id: string | null;
}

export interface PriceBookTable {
  version: string;
  rules: ColumnType<unknown, string, string>;
  active: boolean;
  created_at: Timestamp;
}

export interface AccountTable {
  account_id: string;
  plan_code: string;
  cycle_anchor_at: Timestamp;
  cycles_since_anchor: number;
  cycle_index: number;
  cycle_started_at: Timestamp;
  next_renewal_at: Timestamp;
  created_at: Timestamp;
  /** The account's choice when its credits run out; null: the plan's default. */
  on_exhausted: ColumnType<"stop" | "overage" | null, "stop" | "overage" | null | undefined, "stop" | "overage" | null>;
  /** Who grants each cycle's credits: billing at renewal, or the payment provider's paid invoice. */
  renewals: Generated<Renewals>;
}

export type Renewals = "ledger" | "provider";
/** An account's renewals until a payment provider takes them over: billing grants each cycle. */
export const DEFAULT_RENEWALS: Renewals = "ledger";

export type PoolName = "api" | "web";

export interface CreditAccountTable {
  id: Generated<number>;
  account_id: string;
  pool: PoolName;
  remaining_mc: Generated<number>;
  held_mc: Generated<number>;
  overage_held_mc: Generated<number>;
  cycle_overage_mc: Generated<number>;
  low_balance_threshold_mc: Generated<number>;
}

export interface MemberTable {
  account_id: string;
  member_id: string;
  role: "owner" | "admin" | "member";
  monthly_cap_mc: number | null;
  created_at: Timestamp;
  /** Where the account's notices to this member go; null when unknown. */
  email: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface BucketTable {
  id: Generated<number>;
  credit_account_id: number;
  kind: string;
  granted_mc: number;
  remaining_mc: number;
  held_mc: Generated<number>;
  captured_mc: Generated<number>;
  expired_mc: Generated<number>;
  voided_mc: Generated<number>;
  /** What refunds asked of the bucket but could not take yet (held by open jobs); settle voids it as holds give credits back. */
  owed_mc: Generated<number>;
  effective_at: Timestamp;
  expires_at: Timestamp | null;
  priority: number;
  created_at: Timestamp;
  grant_key: string;
  price_cents: Generated<number>;
  description: string | null;
}

export interface HoldTable {
  id: string;
  credit_account_id: number;
  idempotency_key: string;
  request_hash: string;
  amount_mc: number;
  overage_mc: number;
  status: "open" | "captured" | "released" | "expired";
  expires_at: Timestamp;
  created_at: Timestamp;
  cycle_index: number;
  available_after_mc: number;
  captured_mc: number;
  captured_overage_mc: number;
  returned_mc: number;
  expired_on_return_mc: number;
  settled_at: Timestamp | null;
  settle_available_mc: number | null;
  settle_reason: string | null;
  api_key_id: string | null;
  member_id: string | null;
  description: string | null;
  /** The price book version the amount was quoted under; null: none given (or a hold from before 202611280013). */
  price_book_version: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface HoldAllocationTable {
  hold_id: string;
  position: number;
  bucket_id: number;
  amount_mc: number;
  captured_mc: number;
  returned_mc: number;
  expired_mc: number;
}

export interface LedgerEntryTable {
  id: Generated<number>;
  credit_account_id: number;
  bucket_id: number | null;
  hold_id: string | null;
  kind: string;
  remaining_delta_mc: number;
  held_delta_mc: number;
  occurred_at: Timestamp;
}

export interface GrantRefundTable {
  credit_account_id: number;
  refund_key: string;
  bucket_id: number;
  requested_mc: number;
  refunded_mc: number;
  occurred_at: Timestamp;
}

export interface CycleGrantTable {
  account_id: string;
  invoice_key: string;
  /** The cycle the invoice paid for, counted from the anchor it had then (cycles_since_anchor). */
  cycle_index: number;
  bucket_id: number | null;
  occurred_at: Timestamp;
}

export interface CycleReportTable {
  account_id: string;
  cycle_index: number;
  plan_code: string;
  started_at: Timestamp;
  ended_at: Timestamp;
  overage_mc: number;
  overage_cents: number;
}

export interface OutboxTable {
  id: Generated<number>;
  subject: string;
  payload: ColumnType<Record<string, unknown>, string, string>;
  created_at: Timestamp;
}

export interface BillingSchema {
  billing_plans: PlanTable;
  billing_packs: PackTable;
  billing_price_books: PriceBookTable;
  billing_accounts: AccountTable;
  billing_credit_accounts: CreditAccountTable;
  billing_members: MemberTable;
  billing_buckets: BucketTable;
  billing_holds: HoldTable;
  billing_hold_allocations: HoldAllocationTable;
  billing_ledger_entries: LedgerEntryTable;
  billing_cycle_reports: CycleReportTable;
  billing_grant_refunds: GrantRefundTable;
  billing_cycle_grants: CycleGrantTable;
  billing_outbox: OutboxTable;
}

/**
 * What every aggregate store runs on: a transaction the caller opened, or the pool itself for a
 * single statement (a PL/pgSQL call is its own transaction, and BEGIN/COMMIT around it would
 * cost two more round trips on the hot path).
 */
export type BillingExecutor = Kysely<BillingSchema> | Transaction<BillingSchema>;
