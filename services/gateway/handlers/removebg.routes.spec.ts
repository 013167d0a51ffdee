import { Code, ConnectError } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { test } from "node:test";
import { reasonError, reasonOf } from "../../common/errors.ts";
import { imageUrlError } from "../image-urls.ts";
import { base64LengthOf, decodeImageBase64, removeBgBodyBytesMax, removeBgErrorOf, removeBgUrlError } from "./removebg.routes.ts";

test("image_file_b64 is measured against UPLOAD_BYTES_MAX as base64 before it is decoded", () => {
  assert.deepEqual([...decodeImageBase64("aGk=", 2)], [...Buffer.from("hi")]);
  assert.deepEqual([...decodeImageBase64("aG\nk=", 2)], [...Buffer.from("hi")], "line breaks of wrapped base64 are dropped");
  const tooLong = (() => {
    try {
      decodeImageBase64("A".repeat(base64LengthOf(3) + 4), 3);
    } catch (error) {
      return removeBgErrorOf(error);
    }
    assert.fail("accepted base64 past the limit");
  })();
  assert.equal(tooLong.status, 400);
  assert.equal(tooLong.body.code, "file_too_large");
  assert.match(tooLong.body.detail ?? "", /image_file_b64 is 8 characters; at most 4 \(UPLOAD_BYTES_MAX 3 bytes as base64\)/);
  for (const text of ["not base64!", "aGk=aGk=", "a"]) {
    assert.throws(() => decodeImageBase64(text, 100), (error: unknown) => removeBgErrorOf(error).body.code === "failed_to_read_image", text);
  }
  assert.equal(removeBgBodyBytesMax(3_000), 4_000 + 3_000 + 64 * 1024);
});

test("our reasons answer with remove.bg's codes and statuses; a server fault's message stays in the log", () => {
  const rate = removeBgErrorOf(reasonError(Code.ResourceExhausted, "rate_limited", "10 per minute", { metadata: { "retry-after": "6" } }));
  assert.deepEqual([rate.status, rate.body.code, rate.body.title, rate.headers["retry-after"]], [429, "rate_limit_exceeded", "Rate limit exceeded", "6"]);
  const quota = removeBgErrorOf(reasonError(Code.ResourceExhausted, "monthly_quota_exceeded", "used up", { metadata: { "retry-after": "3600" } }));
  assert.deepEqual([quota.status, quota.body.code, quota.headers["retry-after"]], [429, "rate_limit_exceeded", "3600"]);
  const broke = removeBgErrorOf(reasonError(Code.FailedPrecondition, "insufficient_credits", "0 of 0.25 credits"));
  assert.deepEqual([broke.status, broke.body], [402, { title: "Insufficient credits", code: "insufficient_credits", detail: "0 of 0.25 credits" }]);
  const auth = removeBgErrorOf(reasonError(Code.Unauthenticated, "invalid_api_key", "unknown"));
  assert.deepEqual([auth.status, auth.body], [403, { title: "API Key invalid", code: "auth_failed" }]);
  assert.deepEqual([removeBgErrorOf(reasonError(Code.InvalidArgument, "too_many_bytes", "12 MB")).status, removeBgErrorOf(reasonError(Code.InvalidArgument, "too_many_bytes", "x")).body.code], [400, "file_too_large"]);
  assert.equal(removeBgErrorOf(reasonError(Code.InvalidArgument, "too_many_pixels", "x")).body.code, "resolution_too_high");
  assert.equal(removeBgErrorOf(reasonError(Code.InvalidArgument, "corrupt_image", "x")).body.code, "failed_to_read_image");
  const fault = removeBgErrorOf(new Error("database password is hunter2"));
  assert.equal(fault.status, 500);
  assert.doesNotMatch(JSON.stringify(fault.body), /hunter2/);
  const wrapped = removeBgErrorOf(new ConnectError("socket hang up", Code.Internal));
  assert.deepEqual([wrapped.status, wrapped.body.code, wrapped.body.title], [500, "internal", "internal error"]);
  const timeout = removeBgErrorOf(reasonError(Code.DeadlineExceeded, "sync_timeout", "job j did not finish"));
  assert.deepEqual([timeout.status, timeout.body.code], [504, "sync_timeout"], "no remove.bg code for it: ours, in remove.bg's shape");
});

test("a failed image_url or bg_image_url fetch answers with remove.bg's code for its field; ours stays the reason", () => {
  const url = "https://images.example/a.png";
  for (const [reason, field, code] of [
    ["image_url_invalid", "image_url", "invalid_image_url"],
    ["image_url_invalid", "bg_image_url", "invalid_bg_image_url"],
    ["image_url_refused", "image_url", "failed_image_download"],
    ["image_url_unreachable", "image_url", "failed_image_download"],
    ["image_url_unreachable", "bg_image_url", "failed_bg_download"],
    ["image_url_too_large", "bg_image_url", "file_too_large"],
  ] as const) {
    const mapped = removeBgUrlError(imageUrlError(reason, field, "what went wrong"), field, url);
    assert.ok(mapped instanceof ConnectError);
    assert.equal(reasonOf(mapped), reason);
    const answer = removeBgErrorOf(mapped);
    assert.deepEqual([answer.status, answer.body.code, answer.body.detail], [400, code, `${field}: what went wrong`], `${reason} on ${field}`);
  }
  assert.equal(removeBgErrorOf(removeBgUrlError(imageUrlError("image_url_unreachable", "image_url", "x"), "image_url", url)).body.title, `Failed to download image from given image_url: ${url}`);
  const other = new Error("socket closed");
  assert.equal(removeBgUrlError(other, "image_url", url), other, "anything but an image_url_* refusal passes through as it is");
});
