import { assertInvariant } from "./outcomes.ts";

export type BucketKind = "trial" | "subscription" | "pack" | "top_up" | "promo" | "refund";

export const BUCKET_KINDS: readonly BucketKind[] = ["trial", "subscription", "pack", "top_up", "promo", "refund"];

/**
 * Default spend priority per kind (lower is spent first). Expiry always decides first (the
 * product pages: "credits that expire soonest are spent first"); a priority only breaks a tie
 * between buckets that expire at the same instant, or that both never expire (promo before
 * refund before packs and top-ups).
 */
export const DEFAULT_PRIORITY: Readonly<Record<BucketKind, number>> = {
  trial: 10,
  promo: 20,
  refund: 30,
  subscription: 40,
  top_up: 50,
  pack: 50,
};

export interface SpendableBucket {
  readonly id: number;
  readonly remainingMillicredits: number;
  readonly priority: number;
  readonly effectiveAt: Date;
  readonly expiresAt: Date | null;
  readonly createdAt: Date;
}

/**
 * Spend order: soonest expiry first, whatever the kind (never-expiring last); on equal expiry
 * the lower priority, then the oldest grant, then the lower id, so the order is total and the
 * SQL that spends (`billing_reserve`: `order by expires_at nulls last, priority, created_at, id`)
 * picks exactly the same buckets.
 */
export function compareBucketsForSpend(a: SpendableBucket, b: SpendableBucket): number {
  const aExpiry = a.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY;
  const bExpiry = b.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY;
  if (aExpiry !== bExpiry) return aExpiry < bExpiry ? -1 : 1;
  if (a.priority !== b.priority) return a.priority - b.priority;
  if (a.createdAt.getTime() !== b.createdAt.getTime()) return a.createdAt.getTime() - b.createdAt.getTime();
  return a.id - b.id;
}

export function isSpendable(bucket: SpendableBucket, now: Date): boolean {
  return (
    bucket.remainingMillicredits > 0 &&
    bucket.effectiveAt.getTime() <= now.getTime() &&
    (bucket.expiresAt === null || bucket.expiresAt.getTime() > now.getTime())
  );
}

export interface Allocation {
  readonly bucketId: number;
  readonly amountMillicredits: number;
}

/**
 * Splits a debit over the spendable buckets in spend order. Returns the allocations and the
 * part no bucket could fund (the caller decides between overage and insufficient_credits).
 */
export function allocate(
  buckets: readonly SpendableBucket[],
  amountMillicredits: number,
  now: Date,
): { allocations: Allocation[]; unfundedMillicredits: number } {
  assertInvariant(Number.isSafeInteger(amountMillicredits) && amountMillicredits > 0, `debit must be a positive integer, got ${amountMillicredits}`);
  const ordered = buckets.filter((bucket) => isSpendable(bucket, now)).sort(compareBucketsForSpend);
  const allocations: Allocation[] = [];
  let needMillicredits = amountMillicredits;
  for (const bucket of ordered) {
    if (needMillicredits === 0) break;
    const take = Math.min(needMillicredits, bucket.remainingMillicredits);
    allocations.push({ bucketId: bucket.id, amountMillicredits: take });
    needMillicredits -= take;
  }
  return { allocations, unfundedMillicredits: needMillicredits };
}
