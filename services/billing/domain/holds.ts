// Rules for holds that need no database: what a valid reserve is, what makes two reserves the
// same request, and how far a hold's deadline moves when its job reports progress.
import { createHash } from "node:crypto";
import { amountProblem, textProblem, type LedgerLimits } from "./limits.ts";
import { fail, type Outcome } from "./outcomes.ts";

export type HoldStatus = "open" | "captured" | "released" | "expired";

/**
 * A reserve that finds its account due for renewal renews it and tries again. One renewal
 * covers every missed cycle, so the second try succeeds; the third is slack for a renewal that
 * raced a plan change, and running out of tries is a programmer error.
 */
export const RESERVE_ATTEMPTS_MAX = 3;

export interface ReserveRequest {
  accountId: string;
  amountMillicredits: number;
  idempotencyKey: string;
  holdTtlSeconds?: number;
  apiKeyId?: string;
  memberId?: string;
  description?: string;
  /** The price book version the amount was quoted under; "" or absent: none. */
  priceBookVersion?: string;
}

/** Checks a reserve's fields in a fixed order and resolves its lifetime (0 or absent: the default). */
export function checkReserve(limits: LedgerLimits, request: ReserveRequest): Outcome<{ ttlSeconds: number }> {
  const problem =
    textProblem(limits, "account_id", request.accountId, true) ??
    textProblem(limits, "idempotency_key", request.idempotencyKey, true) ??
    textProblem(limits, "api_key_id", request.apiKeyId, false) ??
    textProblem(limits, "member_id", request.memberId, false) ??
    textProblem(limits, "description", request.description, false) ??
    textProblem(limits, "price_book_version", request.priceBookVersion, false) ??
    amountProblem(limits, request.amountMillicredits);
  if (problem) return fail("invalid_argument", problem);
  const ttlSeconds = request.holdTtlSeconds || limits.holdTtlSecondsDefault;
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > limits.holdTtlSecondsMax) {
    return fail("invalid_argument", `hold_ttl_seconds must be between 1 and ${limits.holdTtlSecondsMax}`);
  }
  return { ok: true, ttlSeconds };
}

/**
 * What makes two reserves with one idempotency key "the same request": everything that changes
 * the charge, the price book version it was quoted under included. A retry with the same hash replays the first hold; any other is a conflict.
 */
export function reserveRequestHash(request: ReserveRequest & { pool: string }, ttlSeconds: number): string {
  return createHash("sha256")
    .update(
      JSON.stringify([
        request.pool,
        request.amountMillicredits,
        ttlSeconds,
        request.apiKeyId ?? "",
        request.memberId ?? "",
        request.description ?? "",
        // Only when named, so holds of a plain amount keep the hash they were made with.
        ...(request.priceBookVersion ? [request.priceBookVersion] : []),
      ]),
    )
    .digest("base64url");
}

/** Checks the fields every settlement carries (capture, release, expire). */
export function settleProblem(limits: LedgerLimits, holdId: string, reason: string): string | undefined {
  return textProblem(limits, "hold_id", holdId, true) ?? textProblem(limits, "reason", reason, false);
}

/** Why a capture amount is refused before the database is asked: it may be 0 (nothing charged), never negative. */
export function captureAmountProblem(amountMillicredits: number): string | undefined {
  if (!Number.isSafeInteger(amountMillicredits) || amountMillicredits < 0) return "capture amount must be a non-negative integer";
  return undefined;
}

export interface HoldDeadline {
  id: string;
  status: HoldStatus;
  expiresAt: Date;
  createdAt: Date;
}

/**
 * A hold whose job keeps reporting progress keeps it: the deadline moves to now plus the
 * lifetime the hold was reserved with, never earlier than it already is. A hold past its
 * deadline is expired even before the sweeper books it so, and a settled one stays settled.
 */
export function extendedDeadline(hold: HoldDeadline, now: Date): Outcome<{ expiresAt: Date }> {
  if (hold.status === "expired" || (hold.status === "open" && hold.expiresAt.getTime() <= now.getTime())) {
    return fail("hold_expired", `hold ${hold.id} passed its deadline and was released`);
  }
  if (hold.status !== "open") return fail("hold_already_settled", `hold ${hold.id} is already ${hold.status}`);
  const lifetimeMs = hold.expiresAt.getTime() - hold.createdAt.getTime();
  return { ok: true, expiresAt: new Date(Math.max(hold.expiresAt.getTime(), now.getTime() + lifetimeMs)) };
}
