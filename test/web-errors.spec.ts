// The web app's reading of refusals (web/src/errors.ts): each reason the gateway sends becomes a
// title a person recognises, the server's figures in the units people use, and the next step.
// The messages here are the gateway's own (reasonError in services/), so a change there shows here.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { reasonError } from "../services/common/errors.ts";
import { isUnavailable, jobProblem, problemOf, readable } from "../web/src/errors.ts";

test("out of credits: the figures in credits and the link to top up", () => {
  const problem = problemOf(reasonError(Code.FailedPrecondition, "insufficient_credits", "insufficient_credits: 0 millicredits available, 250 needed; buy a top-up pack or upgrade the plan"));
  assert.equal(problem.title, "Out of credits");
  assert.equal(problem.detail, "0.25 credits needed, 0 credits available; buy a top-up pack or upgrade the plan");
  assert.deepEqual(problem.action, { href: "/balance#buy", label: "Buy credits" });
  assert.equal(problem.retryable, true, "after a top-up the same upload goes through");
  assert.equal(isUnavailable(reasonError(Code.FailedPrecondition, "insufficient_credits", "")), false, "out of credits is not a missing feature");
});

test("too large names the limit in KB or MB; the same file is not offered a retry", () => {
  const problem = problemOf(reasonError(Code.InvalidArgument, "too_many_bytes", "the image is 481337 bytes; the upload limit is 26214400 bytes (UPLOAD_BYTES_MAX)"));
  assert.equal(problem.title, "File too large");
  assert.equal(problem.detail, "The image is 470 KB; the upload limit is 25 MB (UPLOAD_BYTES_MAX)");
  assert.equal(problem.retryable, false);
});

test("rate limited carries the wait from Retry-After", () => {
  const problem = problemOf(reasonError(Code.ResourceExhausted, "rate_limited", "60 requests per minute (the free plan's rate)", { metadata: { "retry-after": "7" } }));
  assert.deepEqual([problem.title, problem.retryAfterSeconds, problem.retryable], ["Too many requests", 7, true]);
});

test("a service this server lacks is unavailable, not an error; a wrong key sends to sign-in", () => {
  assert.equal(problemOf(reasonError(Code.Unimplemented, "x", "no such RPC")).unavailable, true);
  assert.equal(isUnavailable(reasonError(Code.FailedPrecondition, "payments_not_configured", "payments are manual here")), true);
  assert.deepEqual(problemOf(reasonError(Code.Unauthenticated, "invalid_api_key", "the API key is unknown or revoked")).action, { href: "/sign-in", label: "Sign in again" });
  assert.equal(problemOf(new Error("boom")).title, "Something went wrong");
});

test("a job's own failure: input faults are final, the server's worth a retry", () => {
  assert.deepEqual([jobProblem("corrupt_image", "the image could not be decoded").title, jobProblem("corrupt_image", "").retryable], ["The file could not be read", false]);
  assert.equal(jobProblem("model_unavailable", "the model is loading").retryable, true);
  assert.equal(readable("job_stuck: requeued 3 times", "job_stuck"), "Requeued 3 times");
});
