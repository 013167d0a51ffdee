import { Code, ConnectError } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { reasonError } from "../services/common/errors.ts";
import { apiKeyOf, CliError, describeError, RETRY_AFTER_SECONDS_MAX, withRetries } from "./connection.ts";

/** A call that throws each of `errors` in turn, then answers "done". */
function failing(errors: unknown[]) {
  let calls = 0;
  return {
    call: async () => {
      calls += 1;
      const error = errors.shift();
      if (error !== undefined) throw error;
      return "done";
    },
    calls: () => calls,
  };
}

describe("retries", () => {
  it("waits out RESOURCE_EXHAUSTED for its retry-after, then retries", async () => {
    const limited = reasonError(Code.ResourceExhausted, "rate_limited", "slow down", { metadata: { "retry-after": "0" } });
    const attempt = failing([limited, limited]);
    const waits: number[] = [];
    assert.equal(await withRetries(attempt.call, { onWait: (waitMs) => waits.push(waitMs) }), "done");
    assert.equal(attempt.calls(), 3);
    assert.deepEqual(waits, [100, 100], "a retry-after of 0 still waits 100 ms");
  });

  it("does not wait on a job's server-side failure (the same key replays it): the follow-up key is the caller's", async () => {
    for (const failedJob of [
      reasonError(Code.ResourceExhausted, "queue_full", "queue full", { metadata: { "cutline-job-id": "job-1" } }),
      reasonError(Code.Unavailable, "model_unavailable", "no model", { metadata: { "cutline-job-id": "job-1" } }),
    ]) {
      const attempt = failing([failedJob]);
      await assert.rejects(withRetries(attempt.call), (error: unknown) => error === failedJob);
      assert.equal(attempt.calls(), 1);
    }
  });

  it("gives up on a retry-after past RETRY_AFTER_SECONDS_MAX (a monthly quota) and on other codes", async () => {
    const quota = reasonError(Code.ResourceExhausted, "monthly_quota_exceeded", "used up", { metadata: { "retry-after": String(RETRY_AFTER_SECONDS_MAX + 1) } });
    await assert.rejects(withRetries(failing([quota]).call), (error: unknown) => error === quota);
    const credits = reasonError(Code.FailedPrecondition, "insufficient_credits", "top up");
    const attempt = failing([credits]);
    await assert.rejects(withRetries(attempt.call), (error: unknown) => error === credits);
    assert.equal(attempt.calls(), 1);
  });

  it("retries UNAVAILABLE a few times with a doubling delay", async () => {
    const attempt = failing([new ConnectError("restarting", Code.Unavailable)]);
    const waits: number[] = [];
    assert.equal(await withRetries(attempt.call, { onWait: (waitMs) => waits.push(waitMs) }), "done");
    assert.deepEqual(waits, [500]);
  });
});

describe("errors and the API key", () => {
  it("describes a refusal by its reason, or its code when it has none", () => {
    assert.deepEqual(describeError(reasonError(Code.FailedPrecondition, "insufficient_credits", "top up")), { reason: "insufficient_credits", message: "top up" });
    assert.deepEqual(describeError(new ConnectError("no", Code.PermissionDenied)), { reason: "permission_denied", message: "no" });
  });

  it("reads CUTLINE_API_KEY, else the single node's key file, else says what to do", () => {
    const dataDir = mkdtempSync(join(tmpdir(), "cutline-key-"));
    try {
      assert.equal(apiKeyOf({ CUTLINE_API_KEY: "cl_set", CUTLINE_DATA_DIR: dataDir }), "cl_set");
      assert.throws(() => apiKeyOf({ CUTLINE_DATA_DIR: dataDir }), (error: unknown) => error instanceof CliError && /set CUTLINE_API_KEY/.test(error.message));
      writeFileSync(join(dataDir, "api-key"), "cl_from_file\n");
      assert.equal(apiKeyOf({ CUTLINE_DATA_DIR: dataDir }), "cl_from_file");
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
