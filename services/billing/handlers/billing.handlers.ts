import { create } from "@bufbuild/protobuf";
import { REASON_HEADER } from "../../common/errors.ts";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  AccountSchema,
  AccountSettingsSchema,
  BillingErrorDetailSchema,
  BillingService,
  BucketSchema,
  HoldStatus,
  MemberSchema,
  Operation,
  PlanSchema,
  Pool,
} from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { MEMBER_ROLES, type MemberRole } from "../domain/accounts.ts";
import type { HoldStatus as HoldStatusName } from "../domain/holds.ts";
import type { Failure, FailureReason, Outcome } from "../domain/outcomes.ts";
import { ON_EXHAUSTED_CHOICES } from "../domain/exhaustion.ts";
import { videoPlanRefusal, type OnExhausted, type Plan } from "../domain/plans.ts";
import { priceOf, type OperationName } from "../domain/price-book.ts";
import type { BucketKind } from "../domain/spend-order.ts";
import type { LedgerStore } from "../store/ledger.store.ts";
import type { PoolName, Renewals } from "../store/schema.ts";
import type { AccountView, BucketView, MemberView } from "../store/views.ts";

/**
 * One Connect code per domain reason. insufficient_credits is FailedPrecondition (the account
 * is not in a state to pay; the gateway answers HTTP 402), not ResourceExhausted, which the
 * gateway reserves for rate limits (HTTP 429). The reason itself travels in the message prefix,
 * the `cutline-reason` response header and a BillingErrorDetail.
 */
export const CODE_BY_REASON: Readonly<Record<FailureReason, Code>> = {
  invalid_argument: Code.InvalidArgument,
  resolution_too_large: Code.InvalidArgument,
  video_too_long: Code.InvalidArgument,
  unknown_extra: Code.InvalidArgument,
  capture_exceeds_hold: Code.InvalidArgument,
  account_not_found: Code.NotFound,
  plan_not_found: Code.NotFound,
  pack_not_found: Code.NotFound,
  hold_not_found: Code.NotFound,
  bucket_not_found: Code.NotFound,
  account_exists: Code.AlreadyExists,
  idempotency_conflict: Code.AlreadyExists,
  insufficient_credits: Code.FailedPrecondition,
  member_cap_reached: Code.FailedPrecondition,
  seat_limit_reached: Code.FailedPrecondition,
  hold_expired: Code.FailedPrecondition,
  hold_already_settled: Code.FailedPrecondition,
  plan_changed: Code.FailedPrecondition,
};

export { REASON_HEADER };

/** Shown to callers who run out of credits when the deployment sets no hint of its own. */
export const DEFAULT_TOP_UP_HINT = "buy a top-up pack or upgrade at /billing";

/** Where a caller whose credits ran out upgrades, when the deployment sets no hint of its own. */
export const DEFAULT_UPGRADE_HINT = "upgrade your plan";

/** Kinds an operator may grant; trial and subscription credits are the ledger's own. */
export const GRANTABLE_KINDS: readonly BucketKind[] = ["top_up", "pack", "promo", "refund"];

/** Who grants an account's cycles: billing at renewal, or a payment provider's paid invoice. */
const RENEWALS: readonly Renewals[] = ["ledger", "provider"];

/** `pixels` is a uint64 on the wire; read as signed 64-bit so a huge value fails the range check instead of wrapping. */
const WIRE_INT64_BITS = 64;
/** A monthly cap of 0 on the wire means the member has none. */
const NO_MONTHLY_CAP = 0;
const MILLISECONDS_PER_SECOND = 1000;
const NANOSECONDS_PER_MILLISECOND = 1_000_000;

export interface BillingHandlerDependencies {
  ledger: LedgerStore;
  log: Logger;
  /** Shown to callers who run out of credits. @default DEFAULT_TOP_UP_HINT */
  topUpHint?: string;
  /** Where a caller whose credits ran out upgrades. @default DEFAULT_UPGRADE_HINT */
  upgradeHint?: string;
}

interface Hints {
  topUp: string;
  upgrade: string;
}

function toConnectError(failure: Failure, hints: Hints): ConnectError {
  const exhausted = failure.reason === "insufficient_credits" ? failure.exhausted : undefined;
  const detail = create(BillingErrorDetailSchema, {
    reason: failure.reason,
    availableMillicredits: BigInt(failure.availableMillicredits ?? 0),
    costMillicredits: BigInt(failure.costMillicredits ?? 0),
    topUpHint: failure.reason === "insufficient_credits" ? hints.topUp : "",
    upgradeHint: failure.reason === "insufficient_credits" ? hints.upgrade : "",
    onExhausted: exhausted?.onExhausted ?? "",
    overageOffered: exhausted?.overageOffered ?? false,
    overageCapReached: exhausted?.overageCapReached ?? false,
    overageRateCentsPerCredit: BigInt(exhausted?.overageRateCentsPerCredit ?? 0),
  });
  return new ConnectError(`${failure.reason}: ${failure.message}`, CODE_BY_REASON[failure.reason], { [REASON_HEADER]: failure.reason }, [
    { desc: BillingErrorDetailSchema, value: detail },
  ]);
}

const HOLD_STATUS: Record<HoldStatusName, HoldStatus> = {
  open: HoldStatus.OPEN,
  captured: HoldStatus.CAPTURED,
  released: HoldStatus.RELEASED,
  expired: HoldStatus.EXPIRED,
};

function poolName(pool: Pool): PoolName {
  return pool === Pool.WEB ? "web" : "api";
}

const OPERATION_BY_NAME: Readonly<Record<OperationName, Operation>> = {
  remove_background: Operation.REMOVE_BACKGROUND,
  smart_crop: Operation.SMART_CROP,
  upscale: Operation.UPSCALE,
  video_remove_background: Operation.VIDEO_REMOVE_BACKGROUND,
};

function operationName(operation: Operation): OperationName | undefined {
  return (Object.keys(OPERATION_BY_NAME) as OperationName[]).find((name) => OPERATION_BY_NAME[name] === operation);
}

function operationEnum(operation: OperationName): Operation {
  return OPERATION_BY_NAME[operation];
}

const timestamp = (date: Date | null): Timestamp | undefined => (date ? timestampFromDate(date) : undefined);

/** int64 fields arrive as bigint; anything beyond a safe integer cannot be a real amount. */
function safeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new ConnectError(`invalid_argument: ${field} is out of range`, Code.InvalidArgument, { [REASON_HEADER]: "invalid_argument" });
  }
  return Number(value);
}

function planMessage(plan: Plan) {
  return create(PlanSchema, {
    code: plan.code,
    name: plan.name,
    monthlyPriceCents: BigInt(plan.monthlyPriceCents),
    creditsPerCycleMillicredits: BigInt(plan.creditsPerCycleMillicredits),
    rolloverCycles: plan.rolloverCycles,
    onExhausted: plan.onExhausted,
    overageRateCentsPerCredit: BigInt(plan.overageRateCentsPerCredit),
    overageCapMillicredits: BigInt(plan.overageCapMillicredits),
    requestsPerMinute: plan.requestsPerMinute,
    concurrency: plan.concurrency,
    monthlyCalls: BigInt(plan.monthlyCalls),
    maxUploadBytes: BigInt(plan.maxUploadBytes),
    longestSidePixels: plan.longestSidePixels,
    priorityLane: plan.priorityLane,
    seats: plan.seats,
    planClass: plan.planClass,
    videoSecondsMax: plan.videoSecondsMax,
    videoBytesMax: BigInt(plan.videoBytesMax),
    videoLongestSidePixels: plan.videoLongestSidePixels,
    pool: plan.pool,
    stripePriceId: plan.stripePriceId ?? "",
    termMonths: plan.termMonths,
  });
}

function memberMessage(member: MemberView) {
  return create(MemberSchema, {
    memberId: member.memberId,
    role: member.role,
    monthlyCapMillicredits: BigInt(member.monthlyCapMillicredits ?? 0),
    cycleUsedMillicredits: BigInt(member.cycleUsedMillicredits),
    email: member.email,
  });
}

function accountMessage(account: AccountView) {
  return create(AccountSchema, {
    accountId: account.accountId,
    plan: planMessage(account.plan),
    cycleStartedAt: timestamp(account.cycleStartedAt),
    nextRenewalAt: timestamp(account.nextRenewalAt),
    members: account.members.map(memberMessage),
    cycleOverageMillicredits: BigInt(account.cycleOverageMillicredits),
    cycleOverageCents: BigInt(account.cycleOverageCents),
    createdAt: timestamp(account.createdAt),
    settings: create(AccountSettingsSchema, {
      onExhausted: account.settings.onExhausted,
      onExhaustedIsPlanDefault: account.settings.onExhaustedIsPlanDefault,
      renewals: account.settings.renewals,
    }),
  });
}

function bucketMessage(bucket: BucketView) {
  return create(BucketSchema, {
    id: String(bucket.id),
    kind: bucket.kind,
    grantedMillicredits: BigInt(bucket.grantedMillicredits),
    remainingMillicredits: BigInt(bucket.remainingMillicredits),
    heldMillicredits: BigInt(bucket.heldMillicredits),
    expiresAt: timestamp(bucket.expiresAt),
    effectiveAt: timestamp(bucket.effectiveAt),
    priority: bucket.priority,
  });
}

/** A Timestamp as a Date, whole milliseconds rounded down (a deadline never moves later). */
function dateOf(timestamp: Timestamp): Date {
  return new Date(Number(timestamp.seconds) * MILLISECONDS_PER_SECOND + Math.floor(timestamp.nanos / NANOSECONDS_PER_MILLISECOND));
}

type BillingImpl = ServiceImpl<typeof BillingService>;

/** What every group of handlers shares: the ledger, and the two ways a call fails. */
interface HandlerContext {
  ledger: LedgerStore;
  /** The success value, or the failure as its Connect error (logged at debug). */
  unwrap<T>(outcome: Outcome<T>): T;
  /** An invalid_argument error for a request the handler refuses before the ledger sees it. */
  invalid(message: string): ConnectError;
}

function handlerContext(dependencies: BillingHandlerDependencies): HandlerContext {
  const { ledger, log } = dependencies;
  const hints: Hints = { topUp: dependencies.topUpHint ?? DEFAULT_TOP_UP_HINT, upgrade: dependencies.upgradeHint ?? DEFAULT_UPGRADE_HINT };
  return {
    ledger,
    unwrap<T>(outcome: Outcome<T>): T {
      if (!outcome.ok) {
        log.debug({ reason: outcome.reason }, outcome.message);
        throw toConnectError(outcome, hints);
      }
      return outcome;
    },
    invalid: (message) => toConnectError({ ok: false, reason: "invalid_argument", message }, hints),
  };
}

function quoteHandlers({ ledger, unwrap, invalid }: HandlerContext): Pick<BillingImpl, "quote"> {
  return {
    async quote(request) {
      const operation = operationName(request.operation);
      if (!operation) throw invalid("operation is required");
      const book = await ledger.priceBook();
      const price = unwrap(
        priceOf(book, {
          operation,
          pixels: safeNumber(BigInt.asIntN(WIRE_INT64_BITS, request.pixels), "pixels"),
          hd: request.hd,
          videoMilliseconds: request.videoMilliseconds,
          extras: request.extras,
          quality: request.quality,
        }),
      );
      // Video is also held to the account's plan (60 s standard-class, 5 minutes pro-class); images pay no extra read.
      if (operation === "video_remove_background" && request.accountId) {
        const { account } = unwrap(await ledger.getAccount(request.accountId));
        unwrap(videoPlanRefusal(account.plan, request.videoMilliseconds, Number(BigInt.asIntN(WIRE_INT64_BITS, request.pixels))) ?? { ok: true });
      }
      return { costMillicredits: BigInt(price.costMillicredits), priceBookVersion: book.version };
    },
  };
}

function holdHandlers({ ledger, unwrap }: HandlerContext): Pick<BillingImpl, "reserve" | "extendHold" | "capture" | "release"> {
  return {
    async reserve(request) {
      const hold = unwrap(
        await ledger.reserve({
          accountId: request.accountId,
          pool: poolName(request.pool),
          amountMillicredits: safeNumber(request.amountMillicredits, "amount_millicredits"),
          idempotencyKey: request.idempotencyKey,
          holdTtlSeconds: request.holdTtlSeconds,
          apiKeyId: request.apiKeyId,
          memberId: request.memberId,
          description: request.description,
          priceBookVersion: request.priceBookVersion,
        }),
      );
      return {
        holdId: hold.holdId,
        amountMillicredits: BigInt(hold.amountMillicredits),
        expiresAt: timestampFromDate(hold.expiresAt),
        availableMillicredits: BigInt(hold.availableMillicredits),
        overageMillicredits: BigInt(hold.overageMillicredits),
        replayed: hold.replayed,
        status: HOLD_STATUS[hold.status],
        priceBookVersion: hold.priceBookVersion,
      };
    },

    async extendHold(request) {
      const result = unwrap(await ledger.extendHold(request.holdId));
      return { expiresAt: timestampFromDate(result.expiresAt) };
    },

    async capture(request) {
      const result = unwrap(await ledger.capture(request.holdId, safeNumber(request.amountMillicredits, "amount_millicredits")));
      return {
        capturedMillicredits: BigInt(result.capturedMillicredits),
        returnedMillicredits: BigInt(result.returnedMillicredits),
        availableMillicredits: BigInt(result.availableMillicredits),
      };
    },

    async release(request) {
      const result = unwrap(await ledger.release(request.holdId, request.reason));
      return { returnedMillicredits: BigInt(result.returnedMillicredits), availableMillicredits: BigInt(result.availableMillicredits) };
    },
  };
}

function accountHandlers({ ledger, unwrap, invalid }: HandlerContext): Pick<BillingImpl, "createAccount" | "getAccount" | "changePlan" | "setMember" | "setAccountSettings"> {
  return {
    async createAccount(request) {
      const result = unwrap(
        await ledger.createAccount({
          accountId: request.accountId,
          planCode: request.planCode,
          ownerMemberId: request.ownerMemberId,
          ownerEmail: request.ownerEmail,
          grantTrial: request.grantTrial ?? true,
        }),
      );
      return { account: accountMessage(result.account), created: result.created };
    },

    async getAccount(request) {
      return { account: accountMessage(unwrap(await ledger.getAccount(request.accountId)).account) };
    },

    async changePlan(request) {
      return { account: accountMessage(unwrap(await ledger.changePlan(request.accountId, request.planCode, { fromPlanCode: request.fromPlanCode })).account) };
    },

    async setMember(request) {
      const role = request.role as MemberRole;
      if (!MEMBER_ROLES.includes(role)) throw invalid("role must be owner, admin or member");
      const cap = safeNumber(request.monthlyCapMillicredits, "monthly_cap_millicredits");
      const member = {
        accountId: request.accountId,
        memberId: request.memberId,
        role,
        monthlyCapMillicredits: cap === NO_MONTHLY_CAP ? null : cap,
      };
      return { member: memberMessage(unwrap(await ledger.setMember(member)).member) };
    },

    async setAccountSettings(request) {
      const choice = request.onExhausted;
      if (choice !== undefined && choice !== "plan" && !(ON_EXHAUSTED_CHOICES as readonly string[]).includes(choice)) {
        throw invalid(`on_exhausted must be stop, overage or plan (the plan's default); got ${JSON.stringify(choice)}`);
      }
      const onExhausted = choice === undefined ? undefined : choice === "plan" ? null : (choice as OnExhausted);
      const renewals = request.renewals;
      if (renewals !== undefined && !(RENEWALS as readonly string[]).includes(renewals)) {
        throw invalid(`renewals must be ledger (billing grants each cycle) or provider (a payment provider's paid invoice does); got ${JSON.stringify(renewals)}`);
      }
      return { account: accountMessage(unwrap(await ledger.setAccountSettings({ accountId: request.accountId, onExhausted, renewals: renewals as Renewals | undefined, expectedPlanCode: request.expectedPlanCode })).account) };
    },
  };
}

function creditHandlers({ ledger, unwrap, invalid }: HandlerContext): Pick<BillingImpl, "getBalance" | "grant"> {
  return {
    async getBalance(request) {
      const balance = unwrap(await ledger.balance(request.accountId, poolName(request.pool)));
      return {
        availableMillicredits: BigInt(balance.availableMillicredits),
        heldMillicredits: BigInt(balance.heldMillicredits),
        buckets: balance.buckets.map(bucketMessage),
        affordable: balance.affordable.map((row) => ({ operation: operationEnum(row.operation), description: row.description, count: BigInt(row.count) })),
      };
    },

    async grant(request) {
      const kind = request.kind as BucketKind;
      if (!GRANTABLE_KINDS.includes(kind)) throw invalid(`kind must be one of ${GRANTABLE_KINDS.join(", ")}`);
      const result = unwrap(
        await ledger.grant({
          accountId: request.accountId,
          pool: poolName(request.pool),
          kind,
          packCode: request.packCode || undefined,
          amountMillicredits: safeNumber(request.amountMillicredits, "amount_millicredits"),
          expiresAt: request.expiresAt ? dateOf(request.expiresAt) : null,
          idempotencyKey: request.idempotencyKey,
          description: request.description,
        }),
      );
      return {
        bucket: bucketMessage(result.bucket),
        availableMillicredits: BigInt(result.availableMillicredits),
        priceCents: BigInt(result.priceCents),
        replayed: result.replayed,
      };
    },
  };
}

function historyHandlers({ ledger, unwrap }: HandlerContext): Pick<BillingImpl, "listLedger" | "listUsage" | "listAccounts"> {
  return {
    async listAccounts(request) {
      const page = unwrap(await ledger.listAccounts({ pageSize: request.pageSize, pageToken: request.pageToken }));
      return {
        accounts: page.items.map((account) => ({
          accountId: account.accountId,
          planCode: account.planCode,
          availableMillicredits: BigInt(account.availableMillicredits),
          heldMillicredits: BigInt(account.heldMillicredits),
        })),
        nextPageToken: page.nextPageToken,
      };
    },

    async listLedger(request) {
      const page = unwrap(await ledger.listLedger({ accountId: request.accountId, pool: poolName(request.pool), pageSize: request.pageSize, pageToken: request.pageToken }));
      return {
        entries: page.items.map((entry) => ({
          id: String(entry.id),
          kind: entry.kind,
          bucketId: entry.bucketId === null ? "" : String(entry.bucketId),
          holdId: entry.holdId ?? "",
          remainingDeltaMillicredits: BigInt(entry.remainingDeltaMillicredits),
          heldDeltaMillicredits: BigInt(entry.heldDeltaMillicredits),
          occurredAt: timestampFromDate(entry.occurredAt),
        })),
        nextPageToken: page.nextPageToken,
      };
    },

    async listUsage(request) {
      const page = unwrap(await ledger.listUsage({ accountId: request.accountId, pool: poolName(request.pool), pageSize: request.pageSize, pageToken: request.pageToken }));
      return {
        records: page.items.map((record) => ({
          holdId: record.holdId,
          status: record.status,
          heldMillicredits: BigInt(record.heldMillicredits),
          capturedMillicredits: BigInt(record.capturedMillicredits),
          overageMillicredits: BigInt(record.overageMillicredits),
          memberId: record.memberId ?? "",
          apiKeyId: record.apiKeyId ?? "",
          description: record.description ?? "",
          createdAt: timestampFromDate(record.createdAt),
          settledAt: timestamp(record.settledAt),
          priceBookVersion: record.priceBookVersion,
        })),
        nextPageToken: page.nextPageToken,
        totals: page.totals.map((total) => ({
          dimension: total.dimension,
          key: total.key,
          capturedMillicredits: BigInt(total.capturedMillicredits),
          calls: BigInt(total.calls),
        })),
        days: page.days.map((day) => ({
          date: day.date,
          apiKeyId: day.apiKeyId,
          memberId: day.memberId,
          capturedMillicredits: BigInt(day.capturedMillicredits),
          calls: BigInt(day.calls),
        })),
      };
    },
  };
}

function catalogueHandlers({ ledger }: HandlerContext): Pick<BillingImpl, "listPlans" | "listPacks"> {
  return {
    async listPlans() {
      return { plans: (await ledger.listPlans()).map(planMessage) };
    },

    async listPacks() {
      return {
        packs: (await ledger.listPacks()).map((pack) => ({
          code: pack.code,
          priceCents: BigInt(pack.priceCents),
          creditsMillicredits: BigInt(pack.creditsMillicredits),
          stripePriceId: pack.stripePriceId ?? "",
        })),
      };
    },
  };
}

function paymentHandlers({ ledger, unwrap }: HandlerContext): Pick<BillingImpl, "refundGrant" | "grantCycle"> {
  return {
    async refundGrant(request) {
      const refund = unwrap(
        await ledger.refundGrant({
          accountId: request.accountId,
          bucketId: request.bucketId,
          refundedMinor: safeNumber(request.refundedMinor, "refunded_minor"),
          paidMinor: safeNumber(request.paidMinor, "paid_minor"),
          refundKey: request.idempotencyKey,
        }),
      );
      return {
        refundedMillicredits: BigInt(refund.refundedMillicredits),
        unrecoveredMillicredits: BigInt(refund.unrecoveredMillicredits),
        availableMillicredits: BigInt(refund.availableMillicredits),
        replayed: refund.replayed,
      };
    },

    async grantCycle(request) {
      const granted = unwrap(await ledger.grantCycle({ accountId: request.accountId, invoiceKey: request.idempotencyKey, periodStart: request.periodStart ? dateOf(request.periodStart) : undefined }));
      return { bucket: granted.bucket ? bucketMessage(granted.bucket) : undefined, replayed: granted.replayed, account: accountMessage(granted.account) };
    },
  };
}

function cycleReportHandlers({ ledger, unwrap }: HandlerContext): Pick<BillingImpl, "listCycleReports"> {
  return {
    async listCycleReports(request) {
      const { reports } = unwrap(await ledger.listCycleReports({ accountId: request.accountId, afterCycleIndex: request.afterCycleIndex ?? -1, pageSize: request.pageSize }));
      return {
        reports: reports.map((report) => ({
          cycleIndex: report.cycleIndex,
          planCode: report.planCode,
          startedAt: timestampFromDate(report.startedAt),
          endedAt: timestampFromDate(report.endedAt),
          overageMillicredits: BigInt(report.overageMillicredits),
          overageCents: BigInt(report.overageCents),
        })),
      };
    },
  };
}

/** Thin RPC ↔ ledger translation, one group of RPCs per function; every domain failure becomes one Connect code. */
export function createBillingHandlers(dependencies: BillingHandlerDependencies): BillingImpl {
  const context = handlerContext(dependencies);
  return {
    ...quoteHandlers(context),
    ...holdHandlers(context),
    ...accountHandlers(context),
    ...creditHandlers(context),
    ...historyHandlers(context),
    ...catalogueHandlers(context),
    ...cycleReportHandlers(context),
    ...paymentHandlers(context),
  };
}
