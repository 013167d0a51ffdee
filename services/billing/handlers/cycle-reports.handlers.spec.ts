// ListCycleReports over Connect against a real ledger: closed cycles with their overage, oldest
// first, after a cursor; what a payment provider bills a cycle's overage from.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { BillingService, Pool } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { createBillingFixture, type BillingFixture } from "../billing.testing.ts";

describe("BillingService.ListCycleReports", () => {
  let billing: BillingFixture;
  let client: Client<typeof BillingService>;
  before(async () => {
    billing = await createBillingFixture();
    client = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
  });
  after(() => billing?.dispose());

  it("lists each closed cycle with the overage captured in it, oldest first, after the cursor", async () => {
    const accountId = "cycles-1";
    await client.createAccount({ accountId, planCode: "pro", grantTrial: false });
    assert.deepEqual((await client.listCycleReports({ accountId })).reports, [], "no cycle has closed yet");
    const available = (await client.getBalance({ accountId, pool: Pool.API })).availableMillicredits;
    const hold = await client.reserve({ accountId, pool: Pool.API, amountMillicredits: available + 4_000n, idempotencyKey: "cycle-overage" });
    await client.capture({ holdId: hold.holdId, amountMillicredits: available + 4_000n });
    const first = (await client.getAccount({ accountId })).account!;

    billing.clock.advanceMs(timestampDate(first.nextRenewalAt!).getTime() - billing.clock.now().getTime() + 1);
    assert.ok((await billing.ledger.renewDue()) >= 1);
    await client.changePlan({ accountId, planCode: "business" });

    const { reports } = await client.listCycleReports({ accountId });
    assert.deepEqual(
      reports.map((report) => [report.planCode, report.overageMillicredits]),
      [
        ["pro", 4_000n],
        ["pro", 0n],
      ],
    );
    assert.deepEqual(reports[0]!.startedAt, first.cycleStartedAt);
    assert.deepEqual(reports[0]!.endedAt, first.nextRenewalAt);
    assert.ok(reports[0]!.overageCents > 0n, "priced at the plan's overage rate");
    const later = await client.listCycleReports({ accountId, afterCycleIndex: reports[0]!.cycleIndex });
    assert.deepEqual(later.reports.map((report) => report.cycleIndex), [reports[1]!.cycleIndex]);
    assert.deepEqual((await client.listCycleReports({ accountId, pageSize: 1 })).reports.length, 1);
    await billing.assertHealthy();
  });

  it("refuses an empty account id", async () => {
    const error = await client.listCycleReports({ accountId: "" }).then(
      () => assert.fail("expected a refusal"),
      (caught: unknown) => ConnectError.from(caught),
    );
    assert.equal(error.code, Code.InvalidArgument);
  });
});
