// Events go through the outbox and the real in-process bus: captured, low, exhausted, expired.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import pino from "pino";
import { InProcessEventBus } from "../common/adapters/event-bus.in-process.ts";
import type { BusEvent } from "../common/ports/event-bus.ts";
import { CreditsCapturedSchema, GrantExpiredSchema } from "../common/gen/cutline/billing/v1/events_pb.ts";
import { createBillingFixture, DAY_MS, type BillingFixture } from "./billing.testing.ts";

describe("billing events", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-billing-events-"));
  const bus = new InProcessEventBus({ dataDir, log: pino({ level: "silent" }) });
  const received: BusEvent[] = [];
  let billing: BillingFixture;
  before(async () => {
    billing = await createBillingFixture({ eventBus: bus });
    bus.subscribe(async (event) => void received.push(event), { durableName: "billing_events_spec", subjectFilter: ">" });
  });
  after(async () => {
    await billing?.dispose();
    await bus.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("publishes credits.captured, credits.low, credits.exhausted and grant.expired after commit", async () => {
    const { ledger, clock } = billing;
    assert.ok((await ledger.createAccount({ accountId: "ev", planCode: "free" })).ok);
    const big = await ledger.reserve({ accountId: "ev", pool: "api", amountMillicredits: 9_000, idempotencyKey: "a", memberId: "m1" });
    assert.ok(big.ok);
    assert.ok((await ledger.capture(big.holdId, 9_000)).ok);
    const rest = await ledger.reserve({ accountId: "ev", pool: "api", amountMillicredits: 1_000, idempotencyKey: "b" });
    assert.ok(rest.ok);
    assert.ok((await ledger.capture(rest.holdId, 1_000)).ok);
    assert.ok((await ledger.grant({ accountId: "ev", pool: "api", kind: "promo", amountMillicredits: 500, expiresAt: new Date(clock.now().getTime() + DAY_MS), idempotencyKey: "p" })).ok);
    clock.advanceMs(2 * DAY_MS);
    const counts = await billing.sweeper.sweepOnce();
    assert.equal(counts.eventsPublished, 5);
    for (let waited = 0; received.length < 5 && waited < 100; waited += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(received.map((event) => event.subject), ["credits.captured", "credits.low", "credits.captured", "credits.exhausted", "grant.expired"]);
    const captured = fromBinary(CreditsCapturedSchema, received[0]!.data);
    assert.equal(captured.capturedMillicredits, 9_000n);
    assert.equal(captured.memberId, "m1");
    assert.equal(fromBinary(GrantExpiredSchema, received[4]!.data).expiredMillicredits, 500n);
    assert.equal((await billing.sweeper.sweepOnce()).eventsPublished, 0, "relayed events leave the outbox");
  });

  it("publishes credits.low and credits.exhausted when a refund takes the balance below the threshold, then to nothing", async () => {
    const { ledger } = billing;
    assert.ok((await ledger.createAccount({ accountId: "ev-refund", planCode: "free", grantTrial: false })).ok);
    const granted = await ledger.grant({ accountId: "ev-refund", pool: "api", kind: "top_up", amountMillicredits: 10_000, idempotencyKey: "paid" });
    assert.ok(granted.ok);
    const bucketId = String(granted.bucket.id);
    const from = received.length;
    assert.ok((await ledger.refundGrant({ accountId: "ev-refund", bucketId, refundedMinor: 95, paidMinor: 100, refundKey: "most" })).ok);
    assert.ok((await ledger.refundGrant({ accountId: "ev-refund", bucketId, refundedMinor: 100, paidMinor: 100, refundKey: "all" })).ok);
    assert.ok((await ledger.refundGrant({ accountId: "ev-refund", bucketId, refundedMinor: 100, paidMinor: 100, refundKey: "all" })).ok, "a replay");
    assert.equal((await billing.sweeper.sweepOnce()).eventsPublished, 2);
    for (let waited = 0; received.length < from + 2 && waited < 100; waited += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(received.slice(from).map((event) => event.subject), ["credits.low", "credits.exhausted"]);
  });
});
