// Operating errors are returned as typed outcomes, one reason each; the handler maps every
// reason to exactly one Connect code. Programmer errors (a broken invariant) throw instead.

export type FailureReason =
  | "invalid_argument"
  | "account_not_found"
  | "account_exists"
  | "plan_not_found"
  | "pack_not_found"
  | "hold_not_found"
  | "bucket_not_found"
  | "insufficient_credits"
  | "member_cap_reached"
  | "idempotency_conflict"
  | "hold_expired"
  | "hold_already_settled"
  | "capture_exceeds_hold"
  | "resolution_too_large"
  | "video_too_long"
  | "unknown_extra"
  | "seat_limit_reached"
  | "plan_changed";

export interface Failure {
  readonly ok: false;
  readonly reason: FailureReason;
  readonly message: string;
  readonly availableMillicredits?: number;
  readonly costMillicredits?: number;
  /** insufficient_credits only: the caller's options (upgrade, or continue in overage). */
  readonly exhausted?: ExhaustedChoices;
}

import type { ExhaustedChoices } from "./exhaustion.ts";

export type Outcome<T> = ({ readonly ok: true } & T) | Failure;

export function fail(reason: FailureReason, message: string, extra: Partial<Pick<Failure, "availableMillicredits" | "costMillicredits" | "exhausted">> = {}): Failure {
  return { ok: false, reason, message, ...extra };
}

/** Crashes on a broken invariant: a ledger that disagrees with itself must stop, not log. */
export function assertInvariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`billing invariant broken: ${message}`);
}
