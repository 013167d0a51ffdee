import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { BillingErrorDetailSchema, BillingService, Operation, Pool } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { createBillingFixture, type BillingFixture } from "../billing.testing.ts";
import { CODE_BY_REASON, REASON_HEADER } from "./billing.handlers.ts";

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  assert.fail("expected the call to fail");
}

describe("BillingService over Connect", () => {
  let billing: BillingFixture;
  let client: Client<typeof BillingService>;
  before(async () => {
    billing = await createBillingFixture();
    const transport = createRouterTransport(({ service }) => service(BillingService, billing.handlers));
    client = createClient(BillingService, transport);
  });
  after(async () => {
    await billing?.assertHealthy();
    await billing?.dispose();
  });

  it("maps every failure reason to one code", () => {
    assert.equal(CODE_BY_REASON.insufficient_credits, Code.FailedPrecondition);
    assert.equal(CODE_BY_REASON.idempotency_conflict, Code.AlreadyExists);
    assert.equal(CODE_BY_REASON.hold_not_found, Code.NotFound);
  });

  it("creates an account, quotes, reserves, captures and reports the balance", async () => {
    const created = await client.createAccount({ accountId: "web-shop", planCode: "starter", ownerMemberId: "ann" });
    assert.equal(created.created, true);
    assert.equal(created.account?.plan?.requestsPerMinute, 60);
    assert.equal(created.account?.plan?.priorityLane, "normal");
    const account = await client.getAccount({ accountId: "web-shop" });
    assert.equal(account.account?.plan?.maxUploadBytes, 25n * 1024n * 1024n);
    const quote = await client.quote({ accountId: "web-shop", operation: Operation.REMOVE_BACKGROUND, pixels: 12_000_000n, hd: true });
    assert.equal(quote.costMillicredits, 2200n);
    assert.equal(quote.priceBookVersion, "2025-01-default");
    const hold = await client.reserve({ accountId: "web-shop", pool: Pool.API, amountMillicredits: quote.costMillicredits, idempotencyKey: "req-1" });
    assert.equal(hold.availableMillicredits, 60_000n - 2200n);
    const capture = await client.capture({ holdId: hold.holdId, amountMillicredits: 2200n });
    assert.equal(capture.capturedMillicredits, 2200n);
    const balance = await client.getBalance({ accountId: "web-shop", pool: Pool.API });
    assert.equal(balance.availableMillicredits, 57_800n);
    assert.deepEqual(balance.buckets.map((bucket) => bucket.kind), ["trial", "subscription"]);
    assert.equal(balance.affordable[1]?.count, 115n);
  });

  it("answers insufficient credits with a stable reason, header and detail, and no cause", async () => {
    const error = await rejection(client.reserve({ accountId: "web-shop", pool: Pool.API, amountMillicredits: 10_000_000n, idempotencyKey: "req-2" }));
    assert.equal(error.code, Code.FailedPrecondition);
    assert.match(error.rawMessage, /^insufficient_credits: /);
    assert.equal(error.metadata.get(REASON_HEADER), "insufficient_credits");
    const [detail] = error.findDetails(BillingErrorDetailSchema);
    assert.equal(detail?.reason, "insufficient_credits");
    assert.equal(detail?.availableMillicredits, 57_800n);
    assert.equal(detail?.costMillicredits, 10_000_000n);
    assert.ok(detail?.topUpHint);
    assert.equal(error.cause, undefined);
  });

  it("grants a pack and rejects a reused key for a different request", async () => {
    const granted = await client.grant({ accountId: "web-shop", pool: Pool.API, kind: "pack", packCode: "pack_100", idempotencyKey: "order-9" });
    assert.equal(granted.priceCents, 10_000n);
    assert.equal(granted.bucket?.expiresAt, undefined);
    await client.reserve({ accountId: "web-shop", pool: Pool.API, amountMillicredits: 500n, idempotencyKey: "req-3" });
    const error = await rejection(client.reserve({ accountId: "web-shop", pool: Pool.API, amountMillicredits: 600n, idempotencyKey: "req-3" }));
    assert.equal(error.code, Code.AlreadyExists);
    assert.equal(error.metadata.get(REASON_HEADER), "idempotency_conflict");
    const missing = await rejection(client.capture({ holdId: "nope", amountMillicredits: 1n }));
    assert.equal(missing.code, Code.NotFound);
  });

  it("lists plans, packs, ledger pages and usage", async () => {
    const plans = await client.listPlans({});
    assert.deepEqual(plans.plans.map((plan) => plan.code), ["free", "starter", "pro", "business"]);
    const packs = await client.listPacks({});
    assert.equal(packs.packs.find((pack) => pack.code === "pack_2000")?.creditsMillicredits, 11_111_000n);
    const page = await client.listLedger({ accountId: "web-shop", pool: Pool.API, pageSize: 3 });
    assert.equal(page.entries.length, 3);
    assert.ok(page.nextPageToken);
    const usage = await client.listUsage({ accountId: "web-shop", pool: Pool.API });
    assert.equal(usage.records[0]?.capturedMillicredits, 2200n);
  });
});
