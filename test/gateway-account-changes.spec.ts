// The gateway keeps an account for ADMISSION_CACHE_MS to admit its calls without a billing read
// each; every change made through its billing client must still apply to the very next call.
import { createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { createBillingFixture, type BillingFixture } from "../services/billing/billing.testing.ts";
import { BillingService } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { InProcessBlobStore } from "../services/common/adapters/index.ts";
import { AccountChanges } from "../services/gateway/account-changes.ts";
import { ImageJobs } from "../services/gateway/image-jobs.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

describe("AccountChanges: admission keeps an account, and forgets it on every change made through billing", () => {
  let billing: BillingFixture;
  let blobs: InProcessBlobStore;
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-account-changes-"));
  const log = pino({ level: "silent" });
  const accountReads: string[] = [];
  // Counts the account reads billing serves.
  const countReads: Interceptor = (next) => async (request) => {
    if (!request.stream && request.method.name === "GetAccount") accountReads.push((request.message as unknown as { accountId: string }).accountId);
    return next(request);
  };

  before(async () => {
    billing = await createBillingFixture();
    billing.clock.set(new Date());
    blobs = new InProcessBlobStore({ dataDir, log });
  });

  after(async () => {
    await blobs?.close();
    await billing?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  function gatewaySide(admissionCacheMs: number) {
    const changes = new AccountChanges();
    const client = createClient(
      BillingService,
      createRouterTransport((router) => router.service(BillingService, billing.handlers), { transport: { interceptors: [changes.interceptor] }, router: { interceptors: [countReads] } }),
    );
    // Admission never reaches the orchestrator.
    const orchestrator = createClient(OrchestratorService, createRouterTransport(() => {}));
    const jobs = new ImageJobs(client, orchestrator, blobs, async () => ({ format: "png", width: 1, height: 1, pixels: 1 }), log, {
      uploadBytesMax: 1_000_000,
      syncTimeoutMs: 60_000,
      holdTtlSeconds: 900,
      longestSide: { standard: 2048, pro: 4096 },
      admissionCacheMs,
    });
    changes.onChange((accountId) => jobs.forgetAccount(accountId));
    return { client, jobs };
  }

  it("reads the account once while kept, and a plan change or a new member applies to the next call", async () => {
    const { client, jobs } = gatewaySide(60_000);
    const accountId = "account-changes-1";
    await client.createAccount({ accountId, planCode: "free", grantTrial: false, ownerMemberId: "owner" });
    const owner = { keyId: "key-1", accountId };
    accountReads.length = 0;
    const first = await jobs.admit(owner, { slot: false, calls: 0 });
    const second = await jobs.admit(owner, { slot: false, calls: 0 });
    assert.equal(first.plan?.code, "free");
    assert.equal(second.rate?.limit, first.plan?.requestsPerMinute);
    assert.deepEqual(accountReads, [accountId], "one read for two calls");

    await client.changePlan({ accountId, planCode: "business" });
    const afterChange = await jobs.admit(owner, { slot: false, calls: 0 });
    assert.equal(afterChange.plan?.code, "business");
    assert.equal(afterChange.rate?.limit, afterChange.plan?.requestsPerMinute);
    assert.notEqual(afterChange.plan?.requestsPerMinute, first.plan?.requestsPerMinute);

    await client.setMember({ accountId, memberId: "bob", role: "member" });
    const memberKey = { keyId: "key-2", accountId, memberId: "bob" };
    assert.equal((await jobs.admit(memberKey, { slot: false, calls: 0 })).memberId, "bob");
    assert.equal(accountReads.length, 3, "read again after each change, and only then");
  });

  it("with ADMISSION_CACHE_MS 0, reads the account on every call", async () => {
    const { client, jobs } = gatewaySide(0);
    const accountId = "account-changes-2";
    await client.createAccount({ accountId, planCode: "free", grantTrial: false, ownerMemberId: "owner" });
    accountReads.length = 0;
    for (let call = 0; call < 3; call++) await jobs.admit({ keyId: "key-3", accountId }, { slot: false, calls: 0 });
    assert.equal(accountReads.length, 3);
  });
});
