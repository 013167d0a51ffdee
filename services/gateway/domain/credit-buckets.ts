// The balance split as the vendors' account calls show it: subscription credits renew with the
// plan (our subscription and trial grants); the rest are bought or given (packs, top-ups, promos,
// refunds). Shared by remove.bg's /v1.0/account and Photoroom's /v1/account and /v2/account. Pure.

const SUBSCRIPTION_KINDS: ReadonlySet<string> = new Set(["subscription", "trial"]);

export interface CreditSplit {
  subscriptionMillicredits: bigint;
  /** Pay-as-you-go: every bucket that is not the plan's. */
  paygMillicredits: bigint;
}

/**
 * The spendable balance split into the plan's credits and the rest. The buckets' remainders
 * include held credits (and grants not yet effective), so the split is of `availableMillicredits`:
 * subscription first, at most what is available; pay-as-you-go the remainder.
 */
export function splitCreditBuckets(buckets: readonly { kind: string; remainingMillicredits: bigint }[], availableMillicredits: bigint): CreditSplit {
  let subscription = 0n;
  for (const bucket of buckets) if (SUBSCRIPTION_KINDS.has(bucket.kind)) subscription += bucket.remainingMillicredits;
  const available = availableMillicredits > 0n ? availableMillicredits : 0n;
  const subscriptionMillicredits = subscription < available ? subscription : available;
  return { subscriptionMillicredits, paygMillicredits: available - subscriptionMillicredits };
}
