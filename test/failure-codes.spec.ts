// Every reason a client can see, with its one gRPC code and the HTTP status REST answers with.
// Each service's own mapping is checked against this table, and so is every reason raised as a
// literal anywhere in services/: a reason never means two codes.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { CODE_BY_REASON } from "../services/billing/handlers/billing.handlers.ts";
import type { FailureReason } from "../services/billing/domain/outcomes.ts";
import { httpStatusOf, reasonError, reasonOf } from "../services/common/errors.ts";
import { JobSchema, JobStatus } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import type { ImageErrorReason } from "../services/common/images/image.errors.ts";
import type { VideoErrorReason } from "../services/common/video/video.errors.ts";
import { MALFORMED_MESSAGE_REASON } from "../services/common/request-parse.ts";
import type { OutboundFailureReason } from "../services/common/outbound.ts";
import { IMAGE_URL_CODE_BY_REASON, IMAGE_URL_REASON_BY_OUTBOUND, imageUrlError, type ImageUrlReason } from "../services/gateway/image-urls.ts";
import { JOB_FAILURE_CODES, jobFailure, REASON_BY_LIMIT } from "../services/gateway/image-jobs.ts";
import { VideoError } from "../services/common/video/video.errors.ts";
import { connectCodeOf, InferenceError, inferenceErrorOf, type InferenceErrorReason } from "../services/inference/domain/inference.errors.ts";

const row = (code: Code, http: number) => ({ code, http });

const TABLE: Readonly<Record<string, { code: Code; http: number }>> = {
  // The caller's request or input.
  invalid_argument: row(Code.InvalidArgument, 400),
  invalid_request: row(Code.InvalidArgument, 400),
  invalid_option: row(Code.InvalidArgument, 400),
  malformed_multipart: row(Code.InvalidArgument, 400),
  [MALFORMED_MESSAGE_REASON]: row(Code.InvalidArgument, 400),
  missing_image: row(Code.InvalidArgument, 400),
  // Both image_file and image_url (or bg_image_file and bg_image_url): which one was meant is unknowable.
  conflicting_image_inputs: row(Code.InvalidArgument, 400),
  // image_url / bg_image_url: malformed, a private address, the target failing (422: well-formed, unfetchable), too large.
  image_url_invalid: row(Code.InvalidArgument, 400),
  image_url_refused: row(Code.InvalidArgument, 400),
  image_url_unreachable: row(Code.InvalidArgument, 422),
  image_url_too_large: row(Code.InvalidArgument, 413),
  empty_image: row(Code.InvalidArgument, 400),
  unsupported_format: row(Code.InvalidArgument, 400),
  animated_gif: row(Code.InvalidArgument, 400),
  corrupt_image: row(Code.InvalidArgument, 400),
  // Past a byte limit REST answers 413 Payload Too Large; the message names the limit.
  too_many_bytes: row(Code.InvalidArgument, 413),
  too_many_pixels: row(Code.InvalidArgument, 400),
  resolution_too_large: row(Code.InvalidArgument, 400),
  video_too_long: row(Code.InvalidArgument, 400),
  // The video routes (POST /v1/video/matting, VideoService.SubmitVideo): no video in the form, an
  // empty one, an image sent there, and a video sent to an image route (each names the other route).
  missing_video: row(Code.InvalidArgument, 400),
  empty_video: row(Code.InvalidArgument, 400),
  image_not_accepted: row(Code.InvalidArgument, 400),
  video_not_accepted: row(Code.InvalidArgument, 400),
  // Videos: unreadable (400, like corrupt_image); readable but with nothing the service can work on (422).
  video_corrupt: row(Code.InvalidArgument, 400),
  video_no_stream: row(Code.InvalidArgument, 422),
  video_codec_unsupported: row(Code.InvalidArgument, 422),
  video_frame_rate_too_high: row(Code.InvalidArgument, 422),
  unknown_extra: row(Code.InvalidArgument, 400),
  capture_exceeds_hold: row(Code.InvalidArgument, 400),
  // REST only: a path no route serves, or a method the path does not take.
  not_found: row(Code.NotFound, 404),
  method_not_allowed: row(Code.Unimplemented, 405),
  invalid_webhook_url: row(Code.InvalidArgument, 400),
  // A webhook delivery's failed attempt (its delivery log); image_url fetches answer image_url_* instead.
  outbound_invalid_url: row(Code.InvalidArgument, 400),
  outbound_forbidden_address: row(Code.InvalidArgument, 400),
  outbound_too_many_redirects: row(Code.InvalidArgument, 400),
  outbound_too_large: row(Code.InvalidArgument, 400),
  too_many_items: row(Code.InvalidArgument, 400),
  // A replayed Idempotency-Key with other content: well-formed, but the key stands for another request.
  idempotency_key_reused: row(Code.InvalidArgument, 422),
  // Zero retention keeps nothing, so an asynchronous job's result could never be fetched.
  zero_retention_async: row(Code.InvalidArgument, 400),
  // A payment provider's webhook whose signature does not verify (or no provider is configured): nothing moves.
  invalid_signature: row(Code.InvalidArgument, 400),
  // Who is calling.
  missing_api_key: row(Code.Unauthenticated, 401),
  invalid_api_key: row(Code.Unauthenticated, 401),
  service_token_missing: row(Code.Unauthenticated, 401),
  service_token_invalid: row(Code.Unauthenticated, 401),
  missing_admin_token: row(Code.Unauthenticated, 401),
  invalid_admin_token: row(Code.Unauthenticated, 401),
  role_forbidden: row(Code.PermissionDenied, 403),
  result_url_invalid: row(Code.PermissionDenied, 403),
  result_url_expired: row(Code.PermissionDenied, 403),
  // What does not exist, or already does.
  account_not_found: row(Code.NotFound, 404),
  plan_not_found: row(Code.NotFound, 404),
  pack_not_found: row(Code.NotFound, 404),
  hold_not_found: row(Code.NotFound, 404),
  // RefundGrant: the account has no such bucket (a refund names the bucket its payment granted).
  bucket_not_found: row(Code.NotFound, 404),
  job_not_found: row(Code.NotFound, 404),
  webhook_delivery_not_found: row(Code.NotFound, 404),
  email_not_found: row(Code.NotFound, 404),
  batch_not_found: row(Code.NotFound, 404),
  result_expired: row(Code.NotFound, 404),
  key_not_found: row(Code.NotFound, 404),
  member_not_found: row(Code.NotFound, 404),
  route_not_found: row(Code.NotFound, 404),
  product_not_found: row(Code.NotFound, 404),
  payment_customer_not_found: row(Code.NotFound, 404),
  account_exists: row(Code.AlreadyExists, 409),
  idempotency_conflict: row(Code.AlreadyExists, 409),
  // The account's state; insufficient_credits alone is 402 Payment Required.
  insufficient_credits: row(Code.FailedPrecondition, 402),
  member_cap_reached: row(Code.FailedPrecondition, 400),
  seat_limit_reached: row(Code.FailedPrecondition, 400),
  hold_expired: row(Code.FailedPrecondition, 400),
  hold_already_settled: row(Code.FailedPrecondition, 400),
  // ChangePlan with from_plan_code: the account moved to another plan first (a concurrent change).
  plan_changed: row(Code.FailedPrecondition, 400),
  job_finished: row(Code.FailedPrecondition, 400),
  key_limit_reached: row(Code.FailedPrecondition, 400),
  job_not_charged: row(Code.FailedPrecondition, 400),
  job_unfinished: row(Code.FailedPrecondition, 400),
  // PAYMENT_PROVIDER=manual: the operator grants credits through the admin API.
  payments_not_configured: row(Code.FailedPrecondition, 400),
  // A plan checkout while the account's subscription is live: the billing portal changes it.
  subscription_active: row(Code.FailedPrecondition, 400),
  // Limits: retry later (Retry-After).
  rate_limited: row(Code.ResourceExhausted, 429),
  concurrency_limited: row(Code.ResourceExhausted, 429),
  read_rate_limited: row(Code.ResourceExhausted, 429),
  watch_streams_limited: row(Code.ResourceExhausted, 429),
  queue_full: row(Code.ResourceExhausted, 429),
  monthly_quota_exceeded: row(Code.ResourceExhausted, 429),
  // Ends that are nobody's fault, or the server's.
  cancelled: row(Code.Canceled, 499),
  sync_timeout: row(Code.DeadlineExceeded, 504),
  job_timeout: row(Code.DeadlineExceeded, 504),
  outbound_timeout: row(Code.DeadlineExceeded, 504),
  outbound_failed: row(Code.Unavailable, 503),
  model_unavailable: row(Code.Unavailable, 503),
  storage_unavailable: row(Code.Unavailable, 503),
  job_stuck: row(Code.Internal, 500),
  internal: row(Code.Internal, 500),
};

// Records over each union: adding a reason to a service without adding it here fails to compile.
const INFERENCE_REASONS: Record<InferenceErrorReason, true> = {
  unsupported_format: true,
  animated_gif: true,
  corrupt_image: true,
  too_many_bytes: true,
  too_many_pixels: true,
  invalid_option: true,
  video_corrupt: true,
  video_no_stream: true,
  video_codec_unsupported: true,
  video_frame_rate_too_high: true,
  queue_full: true,
  cancelled: true,
  model_unavailable: true,
  internal: true,
};
const IMAGE_REASONS: Record<ImageErrorReason, true> = { unsupported_format: true, animated_gif: true, corrupt_image: true, too_many_bytes: true, too_many_pixels: true };
const VIDEO_REASONS: Record<VideoErrorReason, true> = { unsupported_format: true, video_corrupt: true, video_no_stream: true, video_codec_unsupported: true, video_frame_rate_too_high: true };

function expected(reason: string): { code: Code; http: number } {
  const entry = TABLE[reason];
  assert.ok(entry, `${reason} is not in the table of reasons (test/failure-codes.spec.ts): add it with its one code`);
  return entry;
}

/** Every `reasonError(Code.X, "reason"` written in services/ (specs aside). */
function literalReasons(): { file: string; code: Code; reason: string }[] {
  const root = join(import.meta.dirname, "..", "services");
  const found: { file: string; code: Code; reason: string }[] = [];
  const walk = (directory: string) => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".spec.ts")) {
        for (const match of readFileSync(path, "utf8").matchAll(/reasonError\(\s*Code\.(\w+),\s*"(\w+)"/g)) {
          found.push({ file: relative(root, path), code: Code[match[1] as keyof typeof Code] as Code, reason: match[2]! });
        }
      }
    }
  };
  walk(root);
  return found;
}

describe("failure reasons: one gRPC code and one HTTP status each", () => {
  test("REST answers each reason's code with its status", () => {
    for (const [reason, { code, http }] of Object.entries(TABLE)) {
      assert.equal(httpStatusOf(reasonError(code, reason, "message")), http, `${reason}: ${Code[code]} → HTTP ${http}`);
    }
  });

  test("billing maps every failure reason to the table's code", () => {
    for (const [reason, code] of Object.entries(CODE_BY_REASON) as [FailureReason, Code][]) {
      assert.equal(Code[code], Code[expected(reason).code], `billing ${reason}`);
    }
  });

  test("inference maps every reason to the table's code, shared image refusals included", () => {
    for (const reason of Object.keys(INFERENCE_REASONS) as InferenceErrorReason[]) {
      assert.equal(Code[connectCodeOf(new InferenceError(reason, "message"))], Code[expected(reason).code], `inference ${reason}`);
    }
    for (const reason of Object.keys(IMAGE_REASONS) as ImageErrorReason[]) assert.equal(expected(reason).code, Code.InvalidArgument, `image ${reason} is the caller's`);
    for (const reason of Object.keys(VIDEO_REASONS) as VideoErrorReason[]) {
      assert.equal(expected(reason).code, Code.InvalidArgument, `video ${reason} is the caller's`);
      assert.equal(connectCodeOf(inferenceErrorOf(new VideoError(reason, "message"))), Code.InvalidArgument, `inference keeps video ${reason}`);
      assert.equal(inferenceErrorOf(new VideoError(reason, "message")).userError, true, `video ${reason} is never retried`);
    }
  });

  test("a failed job answers with its reason's code, whichever service recorded it", () => {
    const failedWith = (reason: string, userError: boolean) =>
      jobFailure(create(JobSchema, { id: "job-1", status: JobStatus.FAILED, errorReason: reason, errorMessage: "message", userError }));
    const userErrors = new Set<string>(["invalid_option", ...Object.keys(IMAGE_REASONS), ...Object.keys(VIDEO_REASONS)]);
    const jobReasons = [...Object.keys(INFERENCE_REASONS), ...Object.keys(JOB_FAILURE_CODES), "job_stuck"].filter((reason) => reason !== "cancelled");
    for (const reason of jobReasons) {
      const error = failedWith(reason, userErrors.has(reason));
      assert.equal(reasonOf(error), reason);
      assert.equal(Code[error.code], Code[expected(reason).code], `job failed with ${reason}`);
      assert.equal(error.metadata.get("cutline-job-id"), "job-1");
    }
    const cancelled = jobFailure(create(JobSchema, { id: "job-1", status: JobStatus.CANCELLED }));
    assert.deepEqual([reasonOf(cancelled), cancelled.code], ["cancelled", expected("cancelled").code]);
    assert.equal(failedWith("", false).code, Code.Internal, "a failure with no reason is the server's");
  });

  test("a failed image_url fetch answers with an image_url reason and its code, whatever the outbound failure", () => {
    for (const [reason, code] of Object.entries(IMAGE_URL_CODE_BY_REASON) as [ImageUrlReason, Code][]) {
      assert.equal(Code[code], Code[expected(reason).code], `image url ${reason}`);
      const error = imageUrlError(reason, "image_url", "message");
      assert.deepEqual([reasonOf(error), error.code, error.rawMessage], [reason, expected(reason).code, "image_url: message"]);
    }
    for (const reason of Object.keys(IMAGE_URL_REASON_BY_OUTBOUND) as OutboundFailureReason[]) expected(IMAGE_URL_REASON_BY_OUTBOUND[reason]);
  });

  test("the gateway's limits answer 429 with their own reasons", () => {
    for (const reason of Object.values(REASON_BY_LIMIT)) assert.equal(expected(reason).code, Code.ResourceExhausted, reason);
  });

  test("every reason raised as a literal in services/ has the table's code", () => {
    const found = literalReasons();
    assert.ok(found.length >= 15, `found only ${found.length} reasonError calls: the scan is broken`);
    const mismatched = found.filter(({ code, reason }) => TABLE[reason]?.code !== code).map(({ file, code, reason }) => `${file}: ${reason} as ${Code[code]}`);
    assert.deepEqual(mismatched, []);
  });
});
