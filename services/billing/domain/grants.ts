// Rules for grants that need no database: what an operator may grant, what a pack sets by
// itself, and when a repeated grant key is a replay rather than a conflict.
import { amountProblem, textProblem, type LedgerLimits } from "./limits.ts";
import { fail, type Failure, type Outcome } from "./outcomes.ts";
import type { Pack } from "./plans.ts";
import { BUCKET_KINDS, DEFAULT_PRIORITY, type BucketKind } from "./spend-order.ts";

/**
 * Operators' grant keys live in their own key space, so an operator's key can never replay (or
 * collide with) a grant the ledger made itself, such as `sign-up-trial`.
 */
export const ADMIN_GRANT_KEY_PREFIX = "admin:";

export function adminGrantKey(idempotencyKey: string): string {
  return `${ADMIN_GRANT_KEY_PREFIX}${idempotencyKey}`;
}

/** Checks an operator's grant request before any lookup: ids, key, description and kind. */
export function adminGrantProblem(limits: LedgerLimits, request: { accountId: string; idempotencyKey: string; description?: string; kind: string }): string | undefined {
  return (
    textProblem(limits, "account_id", request.accountId, true) ??
    textProblem(limits, "idempotency_key", request.idempotencyKey, true) ??
    textProblem(limits, "description", request.description, false) ??
    ((BUCKET_KINDS as readonly string[]).includes(request.kind) ? undefined : `kind must be one of ${BUCKET_KINDS.join(", ")}`)
  );
}

/** What a grant asks for; a pack grant names its pack and leaves the amount 0. */
export interface GrantTerms {
  kind: BucketKind;
  amountMillicredits?: number;
  packCode?: string;
  /** @default now */
  effectiveAt?: Date;
  /** null or undefined: never expires. */
  expiresAt?: Date | null;
  /** Lower is spent first. @default the kind's DEFAULT_PRIORITY */
  priority?: number;
}

/** A grant with every value decided: what the bucket will hold. */
export interface ResolvedGrant {
  kind: BucketKind;
  amountMillicredits: number;
  priceCents: number;
  effectiveAt: Date;
  expiresAt: Date | null;
  priority: number;
}

/**
 * Decides a grant's bucket from its terms. `pack` is the catalogue entry for `terms.packCode`
 * (undefined when there is none). A pack sets its own amount and price and never expires, so
 * it survives renewals; every grant is a positive amount within the limit, and expires after
 * it takes effect.
 */
export function resolveGrant(limits: LedgerLimits, terms: GrantTerms, pack: Pack | undefined, now: Date): Outcome<{ grant: ResolvedGrant }> {
  let amountMillicredits = terms.amountMillicredits ?? 0;
  let priceCents = 0;
  let expiresAt = terms.expiresAt ?? null;
  if (terms.kind === "pack") {
    if (!terms.packCode) return fail("invalid_argument", "a pack grant needs pack_code");
    if (!pack) return fail("pack_not_found", `no pack ${terms.packCode}`);
    if (amountMillicredits !== 0 && amountMillicredits !== pack.creditsMillicredits) return fail("invalid_argument", "a pack sets its own amount; send 0");
    amountMillicredits = pack.creditsMillicredits;
    priceCents = pack.priceCents;
    expiresAt = null;
  }
  const problem = amountProblem(limits, amountMillicredits);
  if (problem) return fail("invalid_argument", problem);
  const effectiveAt = terms.effectiveAt ?? now;
  if (expiresAt && expiresAt.getTime() <= effectiveAt.getTime()) return fail("invalid_argument", "expires_at must be after the grant takes effect");
  return { ok: true, grant: { kind: terms.kind, amountMillicredits, priceCents, effectiveAt, expiresAt, priority: terms.priority ?? DEFAULT_PRIORITY[terms.kind] } };
}

/**
 * A grant key already used: the same kind and amount is a replay (answered with the first
 * bucket); anything else is a conflict.
 */
export function grantReplayConflict(existing: { bucketId: number; kind: string; grantedMillicredits: number }, grant: ResolvedGrant): Failure | undefined {
  if (existing.kind !== grant.kind || existing.grantedMillicredits !== grant.amountMillicredits) {
    return fail("idempotency_conflict", `idempotency key already used for a different grant (bucket ${existing.bucketId})`);
  }
  return undefined;
}

/**
 * What all refunds of a payment together take back from the bucket it granted: its grant times
 * the share of the payment refunded, rounded down (a partial refund never takes a millicredit
 * more than its share). Refunded and paid are in the currency's smallest unit.
 */
export function refundTargetMillicredits(grantedMillicredits: number, refundedMinor: number, paidMinor: number): Outcome<{ targetMillicredits: number }> {
  if (!Number.isSafeInteger(paidMinor) || paidMinor <= 0) return fail("invalid_argument", `paid_minor must be a positive amount of the currency's smallest unit, got ${paidMinor}`);
  if (!Number.isSafeInteger(refundedMinor) || refundedMinor < 0 || refundedMinor > paidMinor) {
    return fail("invalid_argument", `refunded_minor must be from 0 to paid_minor (${paidMinor}), got ${refundedMinor}`);
  }
  // In bigint: granted × refunded can pass 2^53 for a large pack refunded in full.
  const target = (BigInt(grantedMillicredits) * BigInt(refundedMinor)) / BigInt(paidMinor);
  return { ok: true, targetMillicredits: Number(target) };
}
