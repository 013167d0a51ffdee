// The billing RPCs in memory over Connect, against a real ledger. Every test opens its own
// account, so tests neither depend on each other's order nor see each other's money.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { BillingErrorDetailSchema, BillingService, HoldStatus, Operation, Pool } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { createBillingFixture, type BillingFixture } from "../billing.testing.ts";
import { CODE_BY_REASON, DEFAULT_TOP_UP_HINT, DEFAULT_UPGRADE_HINT, REASON_HEADER } from "./billing.handlers.ts";

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  assert.fail("expected the call to fail");
}

/** Asserts the error's code, its reason in the message prefix and the header, and that no cause leaks. */
function assertRefused(error: ConnectError, code: Code, reason: string): void {
  assert.equal(error.code, code);
  assert.match(error.rawMessage, new RegExp(`^${reason}: `));
  assert.equal(error.metadata.get(REASON_HEADER), reason);
  assert.equal(error.cause, undefined);
}

const millisecondsOf = (timestamp: Timestamp | undefined): number => {
  assert.ok(timestamp, "expected a timestamp");
  return timestampDate(timestamp).getTime();
};

/** The shipped plans file's version, which is its price book's. */
const CATALOGUE_VERSION = "2026-11-27-seeds";

// Starter: 10 trial credits + 50 subscription credits.
const STARTER_CREDITS_MC = 60_000n;

describe("BillingService over Connect", () => {
  let billing: BillingFixture;
  let client: Client<typeof BillingService>;
  let accounts = 0;
  before(async () => {
    billing = await createBillingFixture();
    const transport = createRouterTransport(({ service }) => service(BillingService, billing.handlers));
    client = createClient(BillingService, transport);
  });
  after(async () => {
    await billing?.assertHealthy();
    await billing?.dispose();
  });

  /** A new account of its own for the calling test. */
  async function newAccount(options: { planCode?: string; ownerMemberId?: string } = {}): Promise<string> {
    accounts += 1;
    const accountId = `handler-account-${accounts}`;
    const created = await client.createAccount({ accountId, planCode: options.planCode ?? "starter", ownerMemberId: options.ownerMemberId ?? "" });
    assert.equal(created.created, true);
    return accountId;
  }

  it("maps every failure reason to exactly one code", () => {
    assert.deepEqual(CODE_BY_REASON, {
      invalid_argument: Code.InvalidArgument,
      resolution_too_large: Code.InvalidArgument,
      video_too_long: Code.InvalidArgument,
      unknown_extra: Code.InvalidArgument,
      capture_exceeds_hold: Code.InvalidArgument,
      account_not_found: Code.NotFound,
      plan_not_found: Code.NotFound,
      pack_not_found: Code.NotFound,
      hold_not_found: Code.NotFound,
      bucket_not_found: Code.NotFound,
      account_exists: Code.AlreadyExists,
      idempotency_conflict: Code.AlreadyExists,
      insufficient_credits: Code.FailedPrecondition,
      member_cap_reached: Code.FailedPrecondition,
      seat_limit_reached: Code.FailedPrecondition,
      hold_expired: Code.FailedPrecondition,
      hold_already_settled: Code.FailedPrecondition,
      plan_changed: Code.FailedPrecondition,
    });
  });

  it("creates an account with its plan's limits, the trial and the owner; a repeat answers the same account", async () => {
    const accountId = "handler-account-created";
    const created = await client.createAccount({ accountId, planCode: "starter", ownerMemberId: "ann" });
    assert.equal(created.created, true);
    assert.equal(created.account?.accountId, accountId);
    assert.equal(created.account?.plan?.requestsPerMinute, 60);
    assert.equal(created.account?.plan?.priorityLane, "normal");
    assert.equal(created.account?.plan?.maxUploadBytes, 25n * 1024n * 1024n);
    assert.deepEqual(created.account?.members.map((member) => [member.memberId, member.role, member.monthlyCapMillicredits]), [["ann", "owner", 0n]]);
    assert.equal(millisecondsOf(created.account?.cycleStartedAt), billing.clock.now().getTime());
    const again = await client.createAccount({ accountId, planCode: "starter" });
    assert.equal(again.created, false);
    assert.equal(again.account?.accountId, accountId);
    const balance = await client.getBalance({ accountId, pool: Pool.API });
    assert.equal(balance.availableMillicredits, STARTER_CREDITS_MC, "a repeated sign-up grants nothing twice");
    assertRefused(await rejection(client.createAccount({ accountId, planCode: "pro" })), Code.AlreadyExists, "account_exists");
    assertRefused(await rejection(client.createAccount({ accountId: "handler-account-no-plan", planCode: "platinum" })), Code.NotFound, "plan_not_found");
    assertRefused(await rejection(client.getAccount({ accountId: "handler-account-missing" })), Code.NotFound, "account_not_found");
  });

  it("quotes, reserves, captures and reports the balance", async () => {
    const accountId = await newAccount();
    const quote = await client.quote({ accountId, operation: Operation.REMOVE_BACKGROUND, pixels: 12_000_000n, hd: true });
    assert.equal(quote.costMillicredits, 2000n);
    assert.equal(quote.priceBookVersion, CATALOGUE_VERSION);
    const hold = await client.reserve({ accountId, pool: Pool.API, amountMillicredits: quote.costMillicredits, idempotencyKey: "req-1" });
    assert.equal(hold.amountMillicredits, 2000n);
    assert.equal(hold.availableMillicredits, STARTER_CREDITS_MC - 2000n);
    assert.equal(hold.overageMillicredits, 0n);
    assert.equal(hold.replayed, false);
    assert.equal(hold.status, HoldStatus.OPEN);
    assert.equal(millisecondsOf(hold.expiresAt) - billing.clock.now().getTime(), 900_000, "the default hold lifetime");
    const held = await client.getBalance({ accountId, pool: Pool.API });
    assert.deepEqual([held.availableMillicredits, held.heldMillicredits], [STARTER_CREDITS_MC - 2000n, 2000n]);
    const capture = await client.capture({ holdId: hold.holdId, amountMillicredits: 2000n });
    assert.deepEqual([capture.capturedMillicredits, capture.returnedMillicredits, capture.availableMillicredits], [2000n, 0n, 58_000n]);
    const balance = await client.getBalance({ accountId, pool: Pool.API });
    assert.equal(balance.availableMillicredits, 58_000n);
    assert.equal(balance.heldMillicredits, 0n);
    assert.deepEqual(balance.buckets.map((bucket) => [bucket.kind, bucket.remainingMillicredits]), [["trial", 8_000n], ["subscription", 50_000n]]);
    assert.deepEqual(balance.affordable.slice(0, 2).map((row) => [row.operation, row.count]), [[Operation.REMOVE_BACKGROUND, 116n], [Operation.REMOVE_BACKGROUND, 77n]]);
    const replay = await client.reserve({ accountId, pool: Pool.API, amountMillicredits: 2000n, idempotencyKey: "req-1" });
    assert.deepEqual([replay.holdId, replay.replayed, replay.status], [hold.holdId, true, HoldStatus.CAPTURED], "a replay reports that the hold has ended");
  });

  it("quotes and holds smart crop: 1.3 credits an image, 2.6 in HD, and counts it in the balance's answer", async () => {
    const accountId = await newAccount();
    const quote = await client.quote({ accountId, operation: Operation.SMART_CROP, pixels: 64n * 64n, hd: false });
    assert.deepEqual([quote.costMillicredits, quote.priceBookVersion], [1300n, CATALOGUE_VERSION]);
    assert.equal((await client.quote({ accountId, operation: Operation.SMART_CROP, pixels: 12_000_000n, hd: true })).costMillicredits, 2600n);
    const hold = await client.reserve({ accountId, pool: Pool.API, amountMillicredits: quote.costMillicredits, idempotencyKey: "smart-crop-1", description: "smart crop" });
    const capture = await client.capture({ holdId: hold.holdId, amountMillicredits: quote.costMillicredits });
    assert.equal(capture.capturedMillicredits, 1300n);
    const balance = await client.getBalance({ accountId, pool: Pool.API });
    const smartCrop = balance.affordable.find((row) => row.operation === Operation.SMART_CROP);
    assert.deepEqual([smartCrop?.description, smartCrop?.count], ["smart crop, image, up to 67.11 MP", balance.availableMillicredits / 1300n]);
  });

  it("answers insufficient credits with a stable reason, header and detail, and no cause", async () => {
    const accountId = await newAccount();
    const error = await rejection(client.reserve({ accountId, pool: Pool.API, amountMillicredits: 10_000_000n, idempotencyKey: "req-2" }));
    assertRefused(error, Code.FailedPrecondition, "insufficient_credits");
    const [detail] = error.findDetails(BillingErrorDetailSchema);
    assert.equal(detail?.reason, "insufficient_credits");
    assert.equal(detail?.availableMillicredits, STARTER_CREDITS_MC);
    assert.equal(detail?.costMillicredits, 10_000_000n);
    assert.equal(detail?.topUpHint, DEFAULT_TOP_UP_HINT);
    const balance = await client.getBalance({ accountId, pool: Pool.API });
    assert.deepEqual([balance.availableMillicredits, balance.heldMillicredits], [STARTER_CREDITS_MC, 0n], "a refusal holds nothing");
  });

  it("sets what happens when the credits run out, and a refusal names the caller's two options", async () => {
    const accountId = await newAccount({ planCode: "pro" });
    const stopped = await client.setAccountSettings({ accountId, onExhausted: "stop" });
    assert.deepEqual([stopped.account?.settings?.onExhausted, stopped.account?.settings?.onExhaustedIsPlanDefault], ["stop", false]);
    const error = await rejection(client.reserve({ accountId, pool: Pool.API, amountMillicredits: 10_000_000n, idempotencyKey: "past-credits" }));
    assertRefused(error, Code.FailedPrecondition, "insufficient_credits");
    const [detail] = error.findDetails(BillingErrorDetailSchema);
    assert.deepEqual(
      [detail?.onExhausted, detail?.overageOffered, detail?.overageCapReached, detail?.overageRateCentsPerCredit, detail?.upgradeHint],
      ["stop", true, false, 16n, DEFAULT_UPGRADE_HINT],
    );
    const reset = await client.setAccountSettings({ accountId, onExhausted: "plan" });
    assert.deepEqual([reset.account?.settings?.onExhausted, reset.account?.settings?.onExhaustedIsPlanDefault], ["overage", true]);
    assert.equal((await client.getAccount({ accountId })).account?.settings?.onExhausted, "overage");
    assertRefused(await rejection(client.setAccountSettings({ accountId, onExhausted: "later" })), Code.InvalidArgument, "invalid_argument");
    const starter = await newAccount();
    assertRefused(await rejection(client.setAccountSettings({ accountId: starter, onExhausted: "overage" })), Code.InvalidArgument, "invalid_argument");
  });

  it("grants a pack once per key and rejects a reused reserve key for a different request", async () => {
    const accountId = await newAccount();
    const granted = await client.grant({ accountId, pool: Pool.API, kind: "pack", packCode: "pack_100", idempotencyKey: "order-9" });
    assert.equal(granted.priceCents, 10_000n);
    assert.equal(granted.bucket?.kind, "pack");
    assert.equal(granted.bucket?.grantedMillicredits, 555_000n);
    assert.equal(granted.bucket?.expiresAt, undefined, "packs never expire");
    assert.equal(granted.availableMillicredits, STARTER_CREDITS_MC + 555_000n);
    const replayed = await client.grant({ accountId, pool: Pool.API, kind: "pack", packCode: "pack_100", idempotencyKey: "order-9" });
    assert.equal(replayed.bucket?.id, granted.bucket?.id);
    assert.equal(replayed.availableMillicredits, STARTER_CREDITS_MC + 555_000n, "a replayed grant adds nothing");
    assert.deepEqual([granted.replayed, replayed.replayed], [false, true], "the answer says whether it granted");
    await client.reserve({ accountId, pool: Pool.API, amountMillicredits: 500n, idempotencyKey: "req-3" });
    assertRefused(await rejection(client.reserve({ accountId, pool: Pool.API, amountMillicredits: 600n, idempotencyKey: "req-3" })), Code.AlreadyExists, "idempotency_conflict");
    assertRefused(await rejection(client.grant({ accountId, pool: Pool.API, kind: "pack", packCode: "pack_7", idempotencyKey: "order-10" })), Code.NotFound, "pack_not_found");
    assertRefused(await rejection(client.capture({ holdId: "nope", amountMillicredits: 1n })), Code.NotFound, "hold_not_found");
  });

  it("refuses what the handler checks itself: ledger-only grant kinds, a missing operation, a bad role, out-of-range amounts", async () => {
    const accountId = await newAccount();
    for (const kind of ["trial", "subscription", "gift"]) {
      const error = await rejection(client.grant({ accountId, pool: Pool.API, kind, amountMillicredits: 1_000n, idempotencyKey: `kind-${kind}` }));
      assertRefused(error, Code.InvalidArgument, "invalid_argument");
      assert.match(error.rawMessage, /kind must be one of top_up, pack, promo, refund$/);
    }
    assert.match((await rejection(client.quote({ accountId, pixels: 100n }))).rawMessage, /^invalid_argument: operation is required$/);
    assertRefused(await rejection(client.setMember({ accountId, memberId: "bob", role: "root" })), Code.InvalidArgument, "invalid_argument");
    const tooLarge = await rejection(client.reserve({ accountId, pool: Pool.API, amountMillicredits: 1n << 60n, idempotencyKey: "huge" }));
    assertRefused(tooLarge, Code.InvalidArgument, "invalid_argument");
    assert.match(tooLarge.rawMessage, /amount_millicredits is out of range$/);
    const balance = await client.getBalance({ accountId, pool: Pool.API });
    assert.deepEqual([balance.availableMillicredits, balance.buckets.length], [STARTER_CREDITS_MC, 2], "nothing was granted or held");
  });

  it("extends an open hold by its lifetime, releases it in full, and refuses to extend it after", async () => {
    const accountId = await newAccount();
    const hold = await client.reserve({ accountId, pool: Pool.API, amountMillicredits: 1_000n, idempotencyKey: "job-1", holdTtlSeconds: 60 });
    billing.clock.advanceMs(30_000);
    const extended = await client.extendHold({ holdId: hold.holdId });
    assert.equal(millisecondsOf(extended.expiresAt), billing.clock.now().getTime() + 60_000);
    const released = await client.release({ holdId: hold.holdId, reason: "server failure" });
    assert.deepEqual([released.returnedMillicredits, released.availableMillicredits], [1_000n, STARTER_CREDITS_MC]);
    assertRefused(await rejection(client.extendHold({ holdId: hold.holdId })), Code.FailedPrecondition, "hold_already_settled");
    assertRefused(await rejection(client.capture({ holdId: hold.holdId, amountMillicredits: 1_000n })), Code.FailedPrecondition, "hold_already_settled");
  });

  it("changes plan at once and limits members to the plan's seats", async () => {
    const accountId = await newAccount({ ownerMemberId: "owner" });
    const changed = await client.changePlan({ accountId, planCode: "pro" });
    assert.equal(changed.account?.plan?.code, "pro");
    assert.equal(changed.account?.plan?.seats, 3);
    assert.equal(millisecondsOf(changed.account?.cycleStartedAt), billing.clock.now().getTime());
    const balance = await client.getBalance({ accountId, pool: Pool.API });
    assert.equal(balance.availableMillicredits, STARTER_CREDITS_MC + 250_000n, "the starter credits carry over; pro's allocation is added");
    const bob = await client.setMember({ accountId, memberId: "bob", role: "member", monthlyCapMillicredits: 2_000n });
    assert.deepEqual([bob.member?.memberId, bob.member?.role, bob.member?.monthlyCapMillicredits, bob.member?.cycleUsedMillicredits], ["bob", "member", 2_000n, 0n]);
    const uncapped = await client.setMember({ accountId, memberId: "bob", role: "admin", monthlyCapMillicredits: 0n });
    assert.deepEqual([uncapped.member?.role, uncapped.member?.monthlyCapMillicredits], ["admin", 0n], "0 on the wire clears the cap");
    await client.setMember({ accountId, memberId: "carol", role: "member" });
    assertRefused(await rejection(client.setMember({ accountId, memberId: "dave", role: "member" })), Code.FailedPrecondition, "seat_limit_reached");
    const account = await client.getAccount({ accountId });
    assert.deepEqual(account.account?.members.map((member) => member.memberId), ["owner", "bob", "carol"]);
    assertRefused(await rejection(client.changePlan({ accountId, planCode: "platinum" })), Code.NotFound, "plan_not_found");
  });

  it("lists plans, packs, ledger pages and usage", async () => {
    const plans = await client.listPlans({});
    // The plans file's presets, cheapest first; the 2025 plans (starter, pro) are retired, still assignable.
    assert.deepEqual(plans.plans.map((plan) => plan.code), [
      "free",
      "annual_lite",
      "developer",
      "web_basic",
      "annual_performance",
      "growth",
      "annual_scale",
      "scale",
      "image_250",
      "business",
      "enterprise",
    ]);
    const enterprise = plans.plans.find((plan) => plan.code === "enterprise");
    assert.deepEqual([enterprise?.planClass, enterprise?.seats, enterprise?.longestSidePixels, enterprise?.videoSecondsMax, enterprise?.videoBytesMax, enterprise?.videoLongestSidePixels], ["pro", 0, 8192, 300, 1024n * 1024n * 1024n, 1920]);
    const packs = await client.listPacks({});
    assert.deepEqual(packs.packs.map((pack) => pack.code), ["pack_100", "pack_250", "pack_500", "pack_1000", "pack_2000"]);
    assert.equal(packs.packs.find((pack) => pack.code === "pack_2000")?.creditsMillicredits, 11_111_000n);

    const accountId = await newAccount();
    const hold = await client.reserve({ accountId, pool: Pool.API, amountMillicredits: 2_200n, idempotencyKey: "req-1", apiKeyId: "key-1" });
    await client.capture({ holdId: hold.holdId, amountMillicredits: 2_000n });
    const first = await client.listLedger({ accountId, pool: Pool.API, pageSize: 3 });
    assert.deepEqual(first.entries.map((entry) => [entry.kind, entry.remainingDeltaMillicredits, entry.heldDeltaMillicredits]), [
      ["capture", 0n, -2_000n],
      ["release", 200n, -200n],
      ["reserve", -2_200n, 2_200n],
    ]);
    assert.ok(first.nextPageToken);
    const second = await client.listLedger({ accountId, pool: Pool.API, pageSize: 3, pageToken: first.nextPageToken });
    assert.deepEqual(second.entries.map((entry) => [entry.kind, entry.remainingDeltaMillicredits]), [["grant", 50_000n], ["grant", 10_000n]]);
    assert.equal(second.nextPageToken, "");
    assertRefused(await rejection(client.listLedger({ accountId, pool: Pool.API, pageToken: "not-a-token" })), Code.InvalidArgument, "invalid_argument");

    const usage = await client.listUsage({ accountId, pool: Pool.API });
    assert.deepEqual(usage.records.map((record) => [record.holdId, record.status, record.heldMillicredits, record.capturedMillicredits, record.apiKeyId]), [
      [hold.holdId, "captured", 2_200n, 2_000n, "key-1"],
    ]);
    assert.deepEqual(usage.totals.map((total) => [total.dimension, total.key, total.capturedMillicredits, total.calls]), [["api_key", "key-1", 2_000n, 1n]]);
    // Per UTC day of the hold (billing's clock), API key and member.
    const day = billing.clock.now().toISOString().slice(0, 10);
    assert.deepEqual(usage.days.map((row) => [row.date, row.apiKeyId, row.memberId, row.capturedMillicredits, row.calls]), [[day, "key-1", "", 2_000n, 1n]]);
    assert.equal(usage.nextPageToken, "");
  });

  it("lists accounts by id a page at a time, each with its plan and available and held API credits", async () => {
    const first = await newAccount({ planCode: "starter" });
    const second = await newAccount({ planCode: "pro" });
    await client.reserve({ accountId: second, pool: Pool.API, amountMillicredits: 1_500n, idempotencyKey: "list-accounts-hold" });
    const listed: { accountId: string; planCode: string; availableMillicredits: bigint; heldMillicredits: bigint }[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await client.listAccounts({ pageSize: 2, pageToken });
      assert.ok(page.accounts.length <= 2);
      listed.push(...page.accounts);
      pageToken = page.nextPageToken;
      pages += 1;
    } while (pageToken && pages < 1000);
    const ids = listed.map((account) => account.accountId);
    assert.deepEqual(ids, [...ids].sort(), "ascending by id, no repeats across pages");
    assert.equal(new Set(ids).size, ids.length);
    const starter = listed.find((account) => account.accountId === first);
    assert.deepEqual(starter && [starter.planCode, starter.availableMillicredits, starter.heldMillicredits], ["starter", STARTER_CREDITS_MC, 0n]);
    const pro = listed.find((account) => account.accountId === second);
    const proBalance = await client.getBalance({ accountId: second, pool: Pool.API });
    assert.deepEqual(pro && [pro.planCode, pro.availableMillicredits, pro.heldMillicredits], ["pro", proBalance.availableMillicredits, 1_500n]);
    assertRefused(await rejection(client.listAccounts({ pageToken: "not-a-token" })), Code.InvalidArgument, "invalid_argument");
  });
});

describe("BillingService over Connect: a price change is a new version", () => {
  let billing: BillingFixture;
  let client: Client<typeof BillingService>;
  before(async () => {
    billing = await createBillingFixture();
    client = createClient(BillingService, createRouterTransport(({ service }) => service(BillingService, billing.handlers)));
  });
  after(async () => {
    await billing?.assertHealthy();
    await billing?.dispose();
  });

  it("keeps a hold at the version it was quoted under: a price change before the capture changes neither the hold nor what is captured", async () => {
    const accountId = "versioned";
    await client.createAccount({ accountId, planCode: "starter" });
    const request = { accountId, operation: Operation.REMOVE_BACKGROUND, pixels: 12_000_000n, hd: false };
    const quote = await client.quote(request);
    assert.deepEqual([quote.costMillicredits, quote.priceBookVersion], [1000n, CATALOGUE_VERSION]);
    const hold = await client.reserve({ accountId, pool: Pool.API, amountMillicredits: quote.costMillicredits, idempotencyKey: "before-change", priceBookVersion: quote.priceBookVersion });
    assert.equal(hold.priceBookVersion, CATALOGUE_VERSION);

    // The operator doubles every price in a new version.
    const old = await billing.ledger.priceBook();
    const doubled = {
      ...old,
      version: "doubled",
      operations: Object.fromEntries(
        Object.entries(old.operations).map(([name, operation]) => [
          name,
          { ...operation, baseMillicredits: operation.baseMillicredits * 2, tiers: operation.tiers.map((tier) => ({ ...tier, costMillicredits: tier.costMillicredits * 2 })) },
        ]),
      ) as unknown as typeof old.operations,
    };
    assert.ok((await billing.ledger.setPriceBook(doubled)).ok);
    const requoted = await client.quote(request);
    assert.deepEqual([requoted.costMillicredits, requoted.priceBookVersion], [2000n, "doubled"], "new quotes are at the new version");

    // The hold, and its capture (the orchestrator captures what was held), stay at the old version.
    const captured = await client.capture({ holdId: hold.holdId, amountMillicredits: hold.amountMillicredits });
    assert.equal(captured.capturedMillicredits, 1000n);
    const replay = await client.reserve({ accountId, pool: Pool.API, amountMillicredits: quote.costMillicredits, idempotencyKey: "before-change", priceBookVersion: quote.priceBookVersion });
    assert.deepEqual([replay.replayed, replay.priceBookVersion], [true, CATALOGUE_VERSION]);
    // A quote made before the change and reserved after it is still good: its version is stored.
    const late = await client.reserve({ accountId, pool: Pool.API, amountMillicredits: quote.costMillicredits, idempotencyKey: "quoted-before", priceBookVersion: CATALOGUE_VERSION });
    assert.equal(late.priceBookVersion, CATALOGUE_VERSION);
    await client.capture({ holdId: late.holdId, amountMillicredits: late.amountMillicredits });
    const { records } = await client.listUsage({ accountId, pool: Pool.API });
    assert.deepEqual(
      records.map((record) => [record.capturedMillicredits, record.priceBookVersion]).sort(),
      [[1000n, CATALOGUE_VERSION], [1000n, CATALOGUE_VERSION]],
    );

    // A version billing never stored is refused, naming the field.
    const refused = await rejection(client.reserve({ accountId, pool: Pool.API, amountMillicredits: 1000n, idempotencyKey: "made-up", priceBookVersion: "made-up" }));
    assertRefused(refused, Code.InvalidArgument, "invalid_argument");
    assert.match(refused.rawMessage, /price_book_version "made-up"/);
  });
});
