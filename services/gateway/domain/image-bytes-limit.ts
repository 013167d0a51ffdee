// The largest image a call may bring, by upload or by URL: the smallest of the account's plan's
// upload limit and the service's byte limits, with the name an error gives it.

/** A byte limit and what a refusal calls it ("UPLOAD_BYTES_MAX", "the Free plan's upload limit"). */
export interface ByteLimit {
  bytesMax: number;
  name: string;
}

export interface ServiceImageByteLimits {
  /** UPLOAD_BYTES_MAX (bytes). */
  uploadBytesMax: number;
  /** IMAGE_BYTES_MAX, which inference enforces too (bytes); unset, not considered. */
  imageBytesMax?: number;
  /** OUTBOUND_BYTES_MAX, for images fetched from a URL (bytes); unset, not considered. */
  outboundBytesMax?: number;
}

/**
 * The smallest limit that applies; on a tie the plan's (what the customer can change), then the
 * service's in the order listed. A plan's limit of 0 means none.
 */
export function imageBytesLimitOf(plan: { name: string; maxUploadBytes: bigint } | undefined, service: ServiceImageByteLimits): ByteLimit {
  const candidates: ByteLimit[] = [];
  const planBytesMax = Number(plan?.maxUploadBytes ?? 0n);
  if (plan && planBytesMax > 0) candidates.push({ bytesMax: planBytesMax, name: `the ${plan.name} plan's upload limit` });
  // The service's limits are ceilings above the plans: a plan whose limit equals one is named (tie to the plan).
  candidates.push({ bytesMax: service.uploadBytesMax, name: "UPLOAD_BYTES_MAX" });
  if (service.imageBytesMax !== undefined) candidates.push({ bytesMax: service.imageBytesMax, name: "IMAGE_BYTES_MAX" });
  if (service.outboundBytesMax !== undefined) candidates.push({ bytesMax: service.outboundBytesMax, name: "OUTBOUND_BYTES_MAX" });
  return candidates.reduce((smallest, candidate) => (candidate.bytesMax < smallest.bytesMax ? candidate : smallest));
}
