import { create } from "@bufbuild/protobuf";
import { REASON_HEADER } from "../../common/errors.ts";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  AccountSchema,
  BillingErrorDetailSchema,
  BillingService,
  BucketSchema,
  HoldStatus,
  MemberSchema,
  Operation,
  PlanSchema,
  Pool,
} from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import type { Failure, FailureReason, Outcome } from "../domain/outcomes.ts";
import type { Plan } from "../domain/plans.ts";
import { priceOf, type OperationName } from "../domain/price-book.ts";
import type { BucketKind } from "../domain/spend-order.ts";
import type { AccountView, BucketView, HoldStatus as HoldStatusName, LedgerStore, MemberView } from "../store/ledger.store.ts";
import type { PoolName } from "../store/schema.ts";

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
  account_exists: Code.AlreadyExists,
  idempotency_conflict: Code.AlreadyExists,
  insufficient_credits: Code.FailedPrecondition,
  member_cap_reached: Code.FailedPrecondition,
  seat_limit_reached: Code.FailedPrecondition,
  hold_expired: Code.FailedPrecondition,
  hold_already_settled: Code.FailedPrecondition,
};

export { REASON_HEADER };

export interface BillingHandlerDependencies {
  ledger: LedgerStore;
  log: Logger;
  /** Shown to callers who run out of credits. @default "buy a top-up pack or upgrade at /billing" */
  topUpHint?: string;
}

function toConnectError(failure: Failure, topUpHint: string): ConnectError {
  const detail = create(BillingErrorDetailSchema, {
    reason: failure.reason,
    availableMillicredits: BigInt(failure.availableMillicredits ?? 0),
    costMillicredits: BigInt(failure.costMillicredits ?? 0),
    topUpHint: failure.reason === "insufficient_credits" ? topUpHint : "",
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

function operationName(operation: Operation): OperationName | undefined {
  if (operation === Operation.REMOVE_BACKGROUND) return "remove_background";
  if (operation === Operation.VIDEO_REMOVE_BACKGROUND) return "video_remove_background";
  return undefined;
}

function operationEnum(operation: OperationName): Operation {
  return operation === "video_remove_background" ? Operation.VIDEO_REMOVE_BACKGROUND : Operation.REMOVE_BACKGROUND;
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
  });
}

function memberMessage(member: MemberView) {
  return create(MemberSchema, {
    memberId: member.memberId,
    role: member.role,
    monthlyCapMillicredits: BigInt(member.monthlyCapMillicredits ?? 0),
    cycleUsedMillicredits: BigInt(member.cycleUsedMillicredits),
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

const GRANTABLE_KINDS: readonly BucketKind[] = ["top_up", "pack", "promo", "refund"];
const ROLES = ["owner", "admin", "member"] as const;

/** Thin RPC ↔ ledger translation; every domain failure becomes one Connect code. */
export function createBillingHandlers(dependencies: BillingHandlerDependencies): ServiceImpl<typeof BillingService> {
  const { ledger, log } = dependencies;
  const topUpHint = dependencies.topUpHint ?? "buy a top-up pack or upgrade at /billing";

  function unwrap<T>(outcome: Outcome<T>): T {
    if (!outcome.ok) {
      log.debug({ reason: outcome.reason }, outcome.message);
      throw toConnectError(outcome, topUpHint);
    }
    return outcome;
  }

  return {
    async quote(request) {
      const operation = operationName(request.operation);
      if (!operation) throw toConnectError({ ok: false, reason: "invalid_argument", message: "operation is required" }, topUpHint);
      const book = await ledger.priceBook();
      const price = unwrap(
        priceOf(book, {
          operation,
          pixels: safeNumber(BigInt.asIntN(64, request.pixels), "pixels"),
          hd: request.hd,
          videoMilliseconds: request.videoMilliseconds,
          extras: request.extras,
        }),
      );
      return { costMillicredits: BigInt(price.costMillicredits), priceBookVersion: book.version };
    },

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

    async getBalance(request) {
      const balance = unwrap(await ledger.balance(request.accountId, poolName(request.pool)));
      return {
        availableMillicredits: BigInt(balance.availableMillicredits),
        heldMillicredits: BigInt(balance.heldMillicredits),
        buckets: balance.buckets.map(bucketMessage),
        affordable: balance.affordable.map((row) => ({ operation: operationEnum(row.operation), description: row.description, count: BigInt(row.count) })),
      };
    },

    async createAccount(request) {
      const result = unwrap(
        await ledger.createAccount({
          accountId: request.accountId,
          planCode: request.planCode,
          ownerMemberId: request.ownerMemberId,
          grantTrial: request.grantTrial ?? true,
        }),
      );
      return { account: accountMessage(result.account), created: result.created };
    },

    async getAccount(request) {
      return { account: accountMessage(unwrap(await ledger.getAccount(request.accountId)).account) };
    },

    async grant(request) {
      const kind = request.kind as BucketKind;
      if (!GRANTABLE_KINDS.includes(kind)) {
        throw toConnectError({ ok: false, reason: "invalid_argument", message: `kind must be one of ${GRANTABLE_KINDS.join(", ")}` }, topUpHint);
      }
      const result = unwrap(
        await ledger.grant({
          accountId: request.accountId,
          pool: poolName(request.pool),
          kind,
          packCode: request.packCode || undefined,
          amountMillicredits: safeNumber(request.amountMillicredits, "amount_millicredits"),
          expiresAt: request.expiresAt ? new Date(Number(request.expiresAt.seconds) * 1000 + Math.floor(request.expiresAt.nanos / 1e6)) : null,
          idempotencyKey: request.idempotencyKey,
          description: request.description,
        }),
      );
      return { bucket: bucketMessage(result.bucket), availableMillicredits: BigInt(result.availableMillicredits), priceCents: BigInt(result.priceCents) };
    },

    async changePlan(request) {
      return { account: accountMessage(unwrap(await ledger.changePlan(request.accountId, request.planCode)).account) };
    },

    async setMember(request) {
      const role = request.role as (typeof ROLES)[number];
      if (!ROLES.includes(role)) throw toConnectError({ ok: false, reason: "invalid_argument", message: "role must be owner, admin or member" }, topUpHint);
      const cap = safeNumber(request.monthlyCapMillicredits, "monthly_cap_millicredits");
      const result = unwrap(await ledger.setMember({ accountId: request.accountId, memberId: request.memberId, role, monthlyCapMillicredits: cap === 0 ? null : cap }));
      return { member: memberMessage(result.member) };
    },

    async listLedger(request) {
      const page = unwrap(await ledger.listLedger(request.accountId, poolName(request.pool), request.pageSize, request.pageToken));
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
      const page = unwrap(await ledger.listUsage(request.accountId, poolName(request.pool), request.pageSize, request.pageToken));
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
        })),
        nextPageToken: page.nextPageToken,
        totals: page.totals.map((total) => ({
          dimension: total.dimension,
          key: total.key,
          capturedMillicredits: BigInt(total.capturedMillicredits),
          calls: BigInt(total.calls),
        })),
      };
    },

    async listPlans() {
      return { plans: (await ledger.listPlans()).map(planMessage) };
    },

    async listPacks() {
      return {
        packs: (await ledger.listPacks()).map((pack) => ({ code: pack.code, priceCents: BigInt(pack.priceCents), creditsMillicredits: BigInt(pack.creditsMillicredits) })),
      };
    },
  };
}
