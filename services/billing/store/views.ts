// What the ledger answers with, and the row-to-view mappings the aggregate stores share.
import type { Selectable } from "kysely";
import type { MemberRole } from "../domain/accounts.ts";
import { DEFAULT_PLANS, type Plan } from "../domain/plans.ts";
import type { OperationName } from "../domain/price-book.ts";
import type { BucketTable, PlanTable } from "./schema.ts";

export interface BucketView {
  id: number;
  kind: string;
  grantedMillicredits: number;
  remainingMillicredits: number;
  heldMillicredits: number;
  effectiveAt: Date;
  expiresAt: Date | null;
  priority: number;
}

export interface MemberView {
  memberId: string;
  role: MemberRole;
  monthlyCapMillicredits: number | null;
  cycleUsedMillicredits: number;
  /** "" when unknown. */
  email: string;
}

export interface AccountView {
  accountId: string;
  plan: Plan;
  cycleIndex: number;
  cycleStartedAt: Date;
  nextRenewalAt: Date;
  createdAt: Date;
  members: MemberView[];
  cycleOverageMillicredits: number;
  cycleOverageCents: number;
  settings: AccountSettingsView;
}

/** The account's own settings, defaults filled in. */
export interface AccountSettingsView {
  /** What happens when the credits run out: the account's choice, else the plan's. */
  onExhausted: "stop" | "overage";
  /** True when the account made no choice and the plan's default applies. */
  onExhaustedIsPlanDefault: boolean;
  /** "ledger": billing grants each cycle at renewal; "provider": the payment provider's paid invoice does. */
  renewals: "ledger" | "provider";
}

/** One row of the accounts listing: the plan and the API pool's balance. */
export interface AccountSummaryView {
  accountId: string;
  planCode: string;
  availableMillicredits: number;
  heldMillicredits: number;
}

export interface BalanceView {
  availableMillicredits: number;
  heldMillicredits: number;
  buckets: BucketView[];
  affordable: { operation: OperationName; description: string; count: number }[];
}

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

export interface LedgerEntryView {
  id: number;
  kind: string;
  bucketId: number | null;
  holdId: string | null;
  remainingDeltaMillicredits: number;
  heldDeltaMillicredits: number;
  occurredAt: Date;
}

export interface UsageRecordView {
  holdId: string;
  status: string;
  heldMillicredits: number;
  capturedMillicredits: number;
  overageMillicredits: number;
  memberId: string | null;
  apiKeyId: string | null;
  description: string | null;
  createdAt: Date;
  settledAt: Date | null;
  /** The price book version the hold was quoted under; "" when none was given. */
  priceBookVersion: string;
}

export interface UsageTotalView {
  dimension: "member" | "api_key";
  key: string;
  capturedMillicredits: number;
  calls: number;
}

/** Captured usage of one UTC day, API key and member. */
export interface UsageDayView {
  date: string;
  apiKeyId: string;
  memberId: string;
  capturedMillicredits: number;
  calls: number;
}

/** Timestamps arrive as Date from pg and PGlite alike; a string (JSON from a function) is parsed. */
export const toDate = (value: Date | string): Date => (value instanceof Date ? value : new Date(value));

/** The 2025 free plan, whose trial every sign-up got before the plans file set it. */
const SEED_FREE_PLAN = DEFAULT_PLANS.find((plan) => plan.code === "free")!;

export function planFromRow(row: Selectable<PlanTable>): Plan {
  return {
    code: row.code,
    name: row.name,
    monthlyPriceCents: row.monthly_price_cents,
    creditsPerCycleMillicredits: row.credits_per_cycle_mc,
    rolloverCycles: row.rollover_cycles,
    onExhausted: row.on_exhausted,
    overageRateCentsPerCredit: row.overage_rate_cents_per_credit,
    overageCapMillicredits: row.overage_cap_mc,
    requestsPerMinute: row.requests_per_minute,
    concurrency: row.concurrency,
    monthlyCalls: row.monthly_calls,
    maxUploadBytes: row.max_upload_bytes,
    longestSidePixels: row.longest_side_pixels,
    priorityLane: row.priority_lane,
    seats: row.seats,
    planClass: row.plan_class,
    pool: row.pool,
    termMonths: row.term_months,
    creditsValidDays: row.credits_valid_days,
    videoSecondsMax: row.video_seconds_max,
    videoBytesMax: row.video_bytes_max,
    videoLongestSidePixels: row.video_longest_side_pixels,
    stripePriceId: row.stripe_price_id,
    // Absent on a schema before 202611280012, whose sign-ups all got the 2025 trial (the free seed's).
    trialMillicredits: row.trial_mc ?? (row.code === SEED_FREE_PLAN.code ? SEED_FREE_PLAN.trialMillicredits : 0),
    trialDays: row.trial_days ?? (row.code === SEED_FREE_PLAN.code ? SEED_FREE_PLAN.trialDays : 0),
  };
}

export function bucketView(
  row: Pick<Selectable<BucketTable>, "id" | "kind" | "granted_mc" | "remaining_mc" | "held_mc" | "priority"> & {
    effective_at: Date | string;
    expires_at: Date | string | null;
  },
): BucketView {
  return {
    id: row.id,
    kind: row.kind,
    grantedMillicredits: row.granted_mc,
    remainingMillicredits: row.remaining_mc,
    heldMillicredits: row.held_mc,
    effectiveAt: toDate(row.effective_at),
    expiresAt: row.expires_at === null ? null : toDate(row.expires_at),
    priority: row.priority,
  };
}

/** The one row a `select f(...)` answers; none is a broken invariant, not an outcome. */
export function onlyRow<Row>(rows: readonly Row[], what: string): Row {
  const row = rows[0];
  if (row === undefined) throw new Error(`billing invariant broken: ${what} answered no row`);
  return row;
}
