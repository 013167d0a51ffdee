import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { reasonError } from "../services/common/errors.ts";
import { JobStatus } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { failedJobOf, FOLLOW_UP_RETRIES_MAX, followUpKeyOf, JOB_ID_HEADER, worthAFollowUp } from "./follow-up-keys.ts";
import { sendWithFollowUps } from "./remove.command.ts";
import { endOf } from "./video.command.ts";

const BASE = `cutline-cli-remove-v1-${"a".repeat(64)}`;

describe("follow-up keys", () => {
  it("derive the retry's key from the base key and the failed job alone, the same on every run", () => {
    assert.equal(followUpKeyOf(BASE, "job-1"), `${BASE}:after:job-1`);
    assert.equal(followUpKeyOf(BASE, "job-1"), followUpKeyOf(BASE, "job-1"));
    assert.notEqual(followUpKeyOf(BASE, "job-1"), followUpKeyOf(BASE, "job-2"));
    assert.throws(() => followUpKeyOf(BASE, ""), /failed job's id/);
    // Within the gateway's IDEMPOTENCY_KEY_LENGTH_MAX (255) for a UUID job id.
    assert.ok(followUpKeyOf(BASE, "0190f3b2-1c4e-7a8b-9c0d-1e2f3a4b5c6d").length <= 255);
  });

  it("follow up a server-side failure of a job, at most FOLLOW_UP_RETRIES_MAX times; never the caller's fault", () => {
    for (const reason of ["internal", "job_stuck", "job_timeout", "queue_full", "model_unavailable", "hold_expired"]) {
      assert.equal(worthAFollowUp({ jobId: "job-1", failed: true, reason }, 0), true, reason);
      assert.equal(worthAFollowUp({ jobId: "job-1", failed: true, reason }, FOLLOW_UP_RETRIES_MAX), false, reason);
    }
    for (const reason of ["corrupt_image", "too_many_bytes", "insufficient_credits", "member_cap_reached", "cancelled", "video_corrupt", "sync_timeout", "storage_unavailable"]) {
      assert.equal(worthAFollowUp({ jobId: "job-1", failed: true, reason }, 0), false, reason);
    }
    assert.equal(worthAFollowUp({ jobId: "job-1", failed: false, reason: "" }, 0), false);
    assert.equal(worthAFollowUp({ jobId: "", failed: true, reason: "internal" }, 0), false);
  });

  it("read the failed job from a sync call's error only when the gateway names the job and the reason is the server's", () => {
    const failed = (code: Code, reason: string, jobId?: string) => reasonError(code, reason, "m", { metadata: jobId ? { [JOB_ID_HEADER]: jobId } : {} });
    assert.deepEqual(failedJobOf(failed(Code.Internal, "internal", "job-1")), { jobId: "job-1", failed: true, reason: "internal" });
    assert.deepEqual(failedJobOf(failed(Code.ResourceExhausted, "queue_full", "job-2")), { jobId: "job-2", failed: true, reason: "queue_full" });
    assert.equal(failedJobOf(failed(Code.ResourceExhausted, "queue_full")), undefined, "a refusal before any job: the same key is retried");
    assert.equal(failedJobOf(failed(Code.InvalidArgument, "internal", "job-1")), undefined, "the input's fault");
    assert.equal(failedJobOf(failed(Code.FailedPrecondition, "insufficient_credits", "job-1")), undefined);
    assert.equal(failedJobOf(failed(Code.DeadlineExceeded, "sync_timeout", "job-1")), undefined, "the job still runs");
    assert.equal(failedJobOf(failed(Code.Unavailable, "storage_unavailable", "job-1")), undefined, "the job succeeded; its result is replayed");
    assert.equal(failedJobOf(new Error("internal")), undefined);
  });

  it("a video job's end: only FAILED counts as failed", () => {
    assert.deepEqual(endOf({ id: "v-1", status: JobStatus.FAILED, errorReason: "job_timeout" }), { jobId: "v-1", failed: true, reason: "job_timeout" });
    assert.equal(endOf({ id: "v-1", status: JobStatus.CANCELLED, errorReason: "cancelled" }).failed, false);
    assert.equal(endOf({ id: "v-1", status: JobStatus.SUCCEEDED, errorReason: "" }).failed, false);
  });

  it("sendWithFollowUps retries once under the follow-up key, and passes user errors through unretried", async () => {
    const sent: string[] = [];
    const answer = await sendWithFollowUps(BASE, async (key) => {
      sent.push(key);
      if (key === BASE) throw reasonError(Code.Internal, "internal", "m", { metadata: { [JOB_ID_HEADER]: "job-9" } });
      return "ok";
    });
    assert.equal(answer, "ok");
    assert.deepEqual(sent, [BASE, `${BASE}:after:job-9`]);

    const again: string[] = [];
    await assert.rejects(
      sendWithFollowUps(BASE, async (key) => {
        again.push(key);
        throw reasonError(Code.Internal, "job_stuck", "m", { metadata: { [JOB_ID_HEADER]: `job-${again.length}` } });
      }),
      (error: unknown) => error instanceof Error && /m/.test(error.message),
    );
    assert.deepEqual(again, [BASE, `${BASE}:after:job-1`], "one follow-up per run");

    const userError: string[] = [];
    await assert.rejects(
      sendWithFollowUps(BASE, async (key) => {
        userError.push(key);
        throw reasonError(Code.InvalidArgument, "corrupt_image", "bad", { metadata: { [JOB_ID_HEADER]: "job-1" } });
      }),
    );
    assert.deepEqual(userError, [BASE]);
  });
});
