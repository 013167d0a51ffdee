// What every REST route that runs an image job while the caller waits shares (POST /v1/matting,
// POST /v1/smart-crop and the drop-in vendor routes): the caller is authenticated and admitted on the headers, before any
// body byte is read, and the job runs on the one job path (ImageJobs: the same billing, limits and
// idempotency); the per-minute budget goes back as X-RateLimit-*.
import type { HttpRequest, HttpResponse } from "../../common/server.ts";
import { authenticate } from "../authentication.ts";
import { checkedIdempotencyKey, rateLimitHeadersOf, type Admission, type ImageResult } from "../image-jobs.ts";
import type { ImageOptions } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import type { Job } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { ApiKeyOwner } from "../store/api-key.store.ts";
import type { RestDependencies } from "./rest-support.ts";
import { headersOf } from "./upload.admission.ts";

export interface AdmittedCall {
  headers: Headers;
  owner: ApiKeyOwner;
  /** The caller's Idempotency-Key, checked; "" for none. */
  idempotencyKey: string;
  /** Released by the caller of `admitImageCall` when the call ends, however it ends. */
  admission: Admission;
  /** Aborted when the caller hangs up: stops fetching its image URLs and waiting for its result (the job goes on). */
  signal: AbortSignal;
}

/**
 * Authenticates, checks the Idempotency-Key and admits the call (per-minute token; with `slot()`
 * true, a concurrent-request slot), all on the headers. `slot` is asked after authentication, so
 * an unauthenticated caller is refused as such whatever else it sent.
 */
export async function admitImageCall(deps: RestDependencies, request: HttpRequest, response: HttpResponse, slot: () => boolean): Promise<AdmittedCall> {
  const headers = headersOf(request);
  const owner = await authenticate(deps.apiKeys, headers);
  const idempotencyKey = checkedIdempotencyKey(headers.get("idempotency-key"));
  const admission = await deps.imageJobs.admit(owner, { slot: slot() });
  const aborted = new AbortController();
  response.once("close", () => aborted.abort());
  return { headers, owner, idempotencyKey, admission, signal: aborted.signal };
}

/** Runs the job and waits for its result; a caller who hangs up cancels the wait (the job goes on). */
export function removeBackgroundWhileWaiting(
  deps: RestDependencies,
  call: AdmittedCall,
  image: Uint8Array,
  options: ImageOptions,
  extra: { zeroRetention?: boolean } = {},
): Promise<ImageResult> {
  return deps.imageJobs.removeBackground(call.admission, image, options, call.idempotencyKey, call.signal, extra);
}

/** The X-RateLimit-* headers from the admission: the per-minute budget after this call. */
export function rateLimitHeaders(admission: Admission): Record<string, string> {
  return rateLimitHeadersOf(admission.rate);
}

/**
 * Where a succeeded job's time went, as its worker reported it: the wait from the enqueue to the
 * model, the engine's own work, and the worker's whole time on the job. What a client measures
 * beyond queue and inference time is the system's own overhead.
 */
export function timingHeaders(job: Job): Record<string, string> {
  return {
    "x-processing-time-ms": String(job.processingTimeMs),
    "x-queue-time-ms": String(job.queueWaitMs),
    "x-inference-time-ms": String(job.inferenceMs),
  };
}
