// The balance split as the vendors' account calls show it: subscription credits renew with the
// plan (our subscription and trial grants); the rest are bought or given (packs, top-ups, promos,
// refunds). Shared by remove.bg's /v1.0/account and Photoroom's /v1/account and /v2/account. Pure.

const SUBSCRIPTION_KINDS: ReadonlySet<string> = new Set(["subscription", "trial"]);

export interface CreditSplit {
  subscriptionMillicredits: bigint;
  /** Pay-as-you-go: every bucket that is not the plan's. */
  paygMillicredits: bigint;
}

export function splitCreditBuckets(buckets: readonly { kind: string; remainingMillicredits: bigint }[]): CreditSplit {
  let subscriptionMillicredits = 0n;
  let paygMillicredits = 0n;
  for (const bucket of buckets) {
    if (SUBSCRIPTION_KINDS.has(bucket.kind)) subscriptionMillicredits += bucket.remainingMillicredits;
    else paygMillicredits += bucket.remainingMillicredits;
  }
  return { subscriptionMillicredits, paygMillicredits };
}
