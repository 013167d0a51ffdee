import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { creditsEventKeyOf, creditsWebhookBodyOf, eventTypeOf, nextAttemptAt, signatureOf, webhookBodyOf } from "./webhook-event.ts";

describe("webhook events", () => {
  it("the body has the seed's fields plus type; credits are decimal credits; result_url only on success", () => {
    const succeeded = JSON.parse(webhookBodyOf({ id: "j1", status: "succeeded", charged_millicredits: 1300, processing_time_ms: 42 }, "https://x/v1/results/j1?sig"));
    assert.deepEqual(succeeded, {
      type: "job.succeeded",
      status: "succeeded",
      job_id: "j1",
      image_id: "j1",
      result_url: "https://x/v1/results/j1?sig",
      credits_used: 1.3,
      processing_time_ms: 42,
    });
    const failed = JSON.parse(webhookBodyOf({ id: "j2", status: "failed", charged_millicredits: 0, processing_time_ms: null }, "https://ignored"));
    assert.deepEqual([failed.type, failed.result_url, failed.credits_used, failed.processing_time_ms], ["job.failed", null, 0, null]);
    assert.equal(eventTypeOf("cancelled"), "job.cancelled");
    assert.throws(() => eventTypeOf("running"), /not an end/);
  });

  it("signs t.body with the secret's UTF-8 bytes, lowercase hex", () => {
    const body = '{"a":1}';
    const expected = createHmac("sha256", "whsec_abc").update(`1700000000.${body}`).digest("hex");
    assert.equal(signatureOf("whsec_abc", 1_700_000_000, body), `t=1700000000,v1=${expected}`);
  });

  it("backs off exponentially from the minimum, capped, and gives up past the window", () => {
    const schedule = { retryDelayMsMin: 10_000, retryDelayMsMax: 3_600_000, retryWindowMs: 86_400_000 };
    const created = new Date(0);
    const delays = [1, 2, 3, 4, 10, 20].map((attempts) => nextAttemptAt(schedule, attempts, created, created)!.getTime());
    assert.deepEqual(delays, [10_000, 20_000, 40_000, 80_000, 3_600_000, 3_600_000]);
    assert.equal(nextAttemptAt(schedule, 5, created, new Date(86_400_000 - 1000)), undefined, "the next attempt would fall past 24 h");
  });
});

describe("account events", () => {
  it("credits.low keeps the job envelope (job fields null) and adds the account, balance and threshold in decimal credits", () => {
    const event = { type: "credits.low" as const, accountId: "a1", availableMillicredits: 1500, thresholdMillicredits: 2000, occurredAt: new Date("2026-11-27T12:00:00.123Z"), eventId: "" };
    assert.deepEqual(JSON.parse(creditsWebhookBodyOf(event)), {
      type: "credits.low",
      status: "low",
      job_id: null,
      image_id: null,
      result_url: null,
      credits_used: null,
      processing_time_ms: null,
      account_id: "a1",
      available_credits: 1.5,
      threshold_credits: 2,
      occurred_at: "2026-11-27T12:00:00.123Z",
    });
    assert.equal(creditsEventKeyOf(event), creditsEventKeyOf({ ...event }), "the same event has the same key");
    assert.notEqual(creditsEventKeyOf(event), creditsEventKeyOf({ ...event, occurredAt: new Date(0), eventId: "" }));
  });
});
