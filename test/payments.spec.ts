// Payments through a real gateway (port 0) in front of a real billing: checkout sessions from the
// Stripe adapter (pointed at a local server answering Stripe's documented shapes), and Stripe
// webhooks signed by Stripe's own library turned into ledger operations exactly once. The manual
// provider refuses checkout with its reason. No network.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport, ConnectError, Code, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Kysely } from "kysely";
import pino from "pino";
import { createBillingFixture, type BillingFixture } from "../services/billing/billing.testing.ts";
import { InProcessBlobStore, InProcessEventBus, InProcessWorkQueue } from "../services/common/adapters/index.ts";
import { ManualPaymentProvider } from "../services/common/adapters/payment-provider.manual.ts";
import { StripePaymentProvider } from "../services/common/adapters/payment-provider.stripe.ts";
import { signedStripeEvent, startStripeApiServer, type StripeApiServer } from "../services/common/adapters/stripe-api.testing.ts";
import { reasonOf } from "../services/common/errors.ts";
import { BillingService, Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { PaymentService, ProductKind } from "../services/common/gen/cutline/gateway/v1/payment_service_pb.ts";
import { OrchestratorService } from "../services/common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { HealthRegistry } from "../services/common/health.ts";
import { imageLimitsOf } from "../services/common/images/image-limits.ts";
import { createUploadInspector } from "../services/common/images/upload.inspector.ts";
import type { PaymentProvider } from "../services/common/ports/payment-provider.ts";
import { startServiceServer, type ServiceServer } from "../services/common/server.ts";
import { loadGatewayConfig } from "../services/gateway/gateway.config.ts";
import { createGateway, type Gateway } from "../services/gateway/index.ts";
import { createOrchestrator, type Orchestrator } from "../services/orchestrator/index.ts";

const WEBHOOK_SECRET = "whsec_test_gateway";
const PACK_CODE = "pack_100";
const PACK_MILLICREDITS = 555_000n;

interface Stack {
  billing: BillingFixture;
  billingClient: Client<typeof BillingService>;
  gateway: Gateway;
  server: ServiceServer;
  payments: Client<typeof PaymentService>;
  stop(): Promise<void>;
}

async function startStack(provider: PaymentProvider): Promise<Stack> {
  const dataDir = mkdtempSync(join(tmpdir(), "cutline-payments-"));
  const log = pino({ level: "silent" });
  const billing = await createBillingFixture();
  const blobs = new InProcessBlobStore({ dataDir, log });
  const workQueue = new InProcessWorkQueue({ log });
  const eventBus = new InProcessEventBus({ dataDir, log });
  const billingClient = createClient(BillingService, createRouterTransport((router) => router.service(BillingService, billing.handlers)));
  const orchestrator: Orchestrator = createOrchestrator({ db: billing.db as Kysely<any>, workQueue, eventBus, blobStore: blobs, billing: billingClient, log });
  await orchestrator.start();
  const gateway = createGateway({
    db: billing.db as Kysely<any>,
    blobStore: blobs,
    billing: billingClient,
    orchestrator: createClient(OrchestratorService, createRouterTransport(orchestrator.routes)),
    inspect: createUploadInspector(imageLimitsOf(loadGatewayConfig({}))),
    log,
    limits: { uploadBytesMax: 1_000_000, syncTimeoutMs: 60_000, holdTtlSeconds: 900, longestSide: { standard: 2048, pro: 4096 }, readRequestsPerMinute: 0, watchStreamsMax: 0 },
    payments: { provider, currency: "usd" },
  });
  await gateway.start();
  const server = await startServiceServer({ name: "gateway", host: "127.0.0.1", port: 0, log, health: new HealthRegistry(), routes: gateway.routes, httpRoutes: gateway.httpRoutes, admit: gateway.admit });
  const payments = createClient(PaymentService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
  return {
    billing,
    billingClient,
    gateway,
    server,
    payments,
    async stop() {
      await server.close();
      await orchestrator.stop();
      await Promise.all([workQueue.close(), blobs.close(), eventBus.close()]);
      await billing.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const withKey = (key: string) => ({ headers: { "x-api-key": key } });

async function postWebhook(stack: Stack, body: string, signature: string | undefined): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (signature !== undefined) headers["stripe-signature"] = signature;
  const response = await fetch(`${stack.server.url}/v1/payments/stripe/webhook`, { method: "POST", headers, body });
  return { status: response.status, json: await response.json() };
}

async function rest(stack: Stack, key: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${stack.server.url}${path}`, {
    method,
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

async function available(stack: Stack, accountId: string): Promise<bigint> {
  return (await stack.billingClient.getBalance({ accountId, pool: Pool.API })).availableMillicredits;
}

function completedSession(accountId: string, sessionId: string, fields: Record<string, unknown> = {}) {
  return {
    id: sessionId,
    object: "checkout.session",
    mode: "payment",
    status: "complete",
    payment_status: "paid",
    client_reference_id: accountId,
    metadata: { account_id: accountId, product_code: PACK_CODE, product_kind: "pack" },
    payment_intent: `pi_${sessionId}`,
    amount_total: 10_000,
    currency: "usd",
    ...fields,
  };
}

describe("payments through the gateway, Stripe provider", () => {
  let stripeApi: StripeApiServer;
  let stack: Stack;

  before(async () => {
    stripeApi = await startStripeApiServer();
    stack = await startStack(new StripePaymentProvider({ secretKey: "sk_test_gateway", webhookSecret: WEBHOOK_SECRET, overageMeterEventName: "cutline_overage_millicredits", api: stripeApi.api, networkRetriesMax: 0 }));
  });
  after(async () => {
    await stack?.stop();
    await stripeApi?.close();
  });

  it("lists billing's plans and packs as products, checkout available", async () => {
    const key = await stack.gateway.provisionAccount("acct-products");
    const answer = await stack.payments.listProducts({}, withKey(key));
    assert.equal(answer.provider, "stripe");
    assert.equal(answer.checkoutAvailable, true);
    const pack = answer.products.find((product) => product.code === PACK_CODE);
    assert.deepEqual([pack?.kind, pack?.priceMinor, pack?.creditsMillicredits, pack?.currency, pack?.validDays], [ProductKind.PACK, 10_000n, PACK_MILLICREDITS, "usd", 0]);
    assert.ok(answer.products.some((product) => product.kind === ProductKind.PLAN && product.code === "growth" && product.interval === "month"));
    assert.ok(!answer.products.some((product) => product.code === "free"), "a plan with no price is not sold");
  });

  it("returns the session URL of a pack checkout; its completed webhook grants the pack once, however often delivered", async () => {
    const accountId = "acct-pack";
    const key = await stack.gateway.provisionAccount(accountId);
    const { url } = await stack.payments.createCheckout({ productCode: PACK_CODE, successUrl: "https://example.com/paid", cancelUrl: "https://example.com/cancelled" }, withKey(key));
    const sessionRequest = stripeApi.requestsTo("/v1/checkout/sessions").at(-1)!;
    assert.match(url, /^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_test_/);
    assert.equal(sessionRequest.form["metadata[account_id]"], accountId);
    const customerId = sessionRequest.form.customer!;
    // A second checkout reuses the account's customer.
    await stack.payments.createCheckout({ productCode: PACK_CODE, successUrl: "https://example.com/paid", cancelUrl: "https://example.com/cancelled" }, withKey(key));
    assert.equal(stripeApi.requestsTo("/v1/checkout/sessions").at(-1)!.form.customer, customerId);
    assert.equal(stripeApi.requestsTo("/v1/customers").filter((request) => request.form["metadata[account_id]"] === accountId).length, 1);

    const before = await available(stack, accountId);
    const sessionId = url.split("/").at(-1)!;
    const event = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_pack_1", type: "checkout.session.completed", object: completedSession(accountId, sessionId, { customer: customerId }) });
    const first = await postWebhook(stack, event.body, event.signature);
    assert.deepEqual([first.status, first.json], [200, { received: true, applied: true, replayed: false }]);
    assert.equal(await available(stack, accountId), before + PACK_MILLICREDITS);

    const replay = await postWebhook(stack, event.body, event.signature);
    assert.deepEqual([replay.status, replay.json.replayed], [200, true]);
    // Another event about the same session (a delayed payment succeeding) grants nothing more either.
    const sameSession = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_pack_2", type: "checkout.session.async_payment_succeeded", object: completedSession(accountId, sessionId) });
    assert.equal((await postWebhook(stack, sameSession.body, sameSession.signature)).status, 200);
    assert.equal(await available(stack, accountId), before + PACK_MILLICREDITS, "granted exactly once");
    await stack.billing.assertHealthy();

    // The customer portal for the account that now has a customer.
    const portal = await stack.payments.createPortalSession({ returnUrl: "https://example.com/account" }, withKey(key));
    assert.match(portal.url, /^https:\/\/billing\.stripe\.com\/p\/session\//);
    assert.equal(stripeApi.requestsTo("/v1/billing_portal/sessions").at(-1)!.form.customer, customerId);
  });

  it("answers the same over REST: products in decimal credits, a checkout URL, the portal, and named refusals", async () => {
    const key = await stack.gateway.provisionAccount("acct-rest");
    const products = await rest(stack, key, "GET", "/v1/payments/products");
    assert.equal(products.status, 200);
    assert.deepEqual([products.json.provider, products.json.checkout_available], ["stripe", true]);
    assert.deepEqual(
      products.json.products.find((product: { code: string }) => product.code === PACK_CODE),
      { code: PACK_CODE, kind: "pack", name: "555 credits", price_minor: 10_000, currency: "usd", credits: 555, interval: null, valid_days: 0 },
    );
    const portalFirst = await rest(stack, key, "POST", "/v1/payments/portal", { return_url: "https://example.com/account" });
    assert.deepEqual([portalFirst.status, portalFirst.json.errors[0].code], [404, "payment_customer_not_found"]);
    const checkout = await rest(stack, key, "POST", "/v1/payments/checkout", { product_code: PACK_CODE, success_url: "https://example.com/paid", cancel_url: "https://example.com/cancelled" });
    assert.equal(checkout.status, 200);
    assert.match(checkout.json.url, /^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_test_/);
    assert.equal((await rest(stack, key, "POST", "/v1/payments/portal", { return_url: "https://example.com/account" })).status, 200);
    const unknown = await rest(stack, key, "POST", "/v1/payments/checkout", { product_code: "pack_nope", success_url: "https://example.com/paid", cancel_url: "https://example.com/cancelled" });
    assert.deepEqual([unknown.status, unknown.json.errors[0].code], [404, "product_not_found"]);
    const badUrl = await rest(stack, key, "POST", "/v1/payments/checkout", { product_code: PACK_CODE, success_url: "javascript:alert(1)", cancel_url: "https://example.com/cancelled" });
    assert.deepEqual([badUrl.status, badUrl.json.errors[0].code], [400, "invalid_argument"]);
    assert.match(badUrl.json.errors[0].title, /success_url/);
    assert.equal((await rest(stack, "not-a-key", "GET", "/v1/payments/products")).status, 401);
  });

  it("refuses a bad signature with 400 and moves nothing; unknown events answer 200 and are ignored", async () => {
    const accountId = "acct-forged";
    await stack.gateway.provisionAccount(accountId);
    const before = await available(stack, accountId);
    const forged = await signedStripeEvent("whsec_not_ours", { id: "evt_forged", type: "checkout.session.completed", object: completedSession(accountId, "cs_forged") });
    const refused = await postWebhook(stack, forged.body, forged.signature);
    assert.equal(refused.status, 400);
    assert.equal(refused.json.errors[0].code, "invalid_signature");
    assert.equal((await postWebhook(stack, forged.body, undefined)).status, 400);
    assert.equal(await available(stack, accountId), before);
    // The same event properly signed is applied afterwards: the refusal claimed nothing.
    const genuine = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_forged", type: "checkout.session.completed", object: completedSession(accountId, "cs_forged") });
    assert.equal((await postWebhook(stack, genuine.body, genuine.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), before + PACK_MILLICREDITS);

    const unknown = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_unknown", type: "payment_method.attached", object: { id: "pm_1" } });
    assert.deepEqual(await postWebhook(stack, unknown.body, unknown.signature), { status: 200, json: { received: true, applied: false, replayed: false } });
  });

  it("grants once when Stripe delivers the same event twice at the same moment", async () => {
    const accountId = "acct-concurrent";
    await stack.gateway.provisionAccount(accountId);
    const before = await available(stack, accountId);
    const event = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_concurrent", type: "checkout.session.completed", object: completedSession(accountId, "cs_concurrent") });
    const answers = await Promise.all([1, 2, 3].map(() => postWebhook(stack, event.body, event.signature)));
    assert.deepEqual(answers.map((answer) => answer.status), [200, 200, 200]);
    assert.equal(answers.filter((answer) => answer.json.applied).length, 1);
    assert.equal(await available(stack, accountId), before + PACK_MILLICREDITS);
  });

  it("settles an event billing refuses for good (an unknown pack) without effect, instead of having Stripe retry it for days", async () => {
    const accountId = "acct-unknown-pack";
    await stack.gateway.provisionAccount(accountId);
    const before = await available(stack, accountId);
    const event = await signedStripeEvent(WEBHOOK_SECRET, {
      id: "evt_unknown_pack",
      type: "checkout.session.completed",
      object: completedSession(accountId, "cs_unknown_pack", { metadata: { account_id: accountId, product_code: "pack_withdrawn" } }),
    });
    assert.deepEqual(await postWebhook(stack, event.body, event.signature), { status: 200, json: { received: true, applied: false, replayed: false } });
    assert.equal(await available(stack, accountId), before);
    assert.equal((await postWebhook(stack, event.body, event.signature)).json.replayed, true);
  });

  it("moves a subscriber onto the plan once, keeps it on renewal, and back to free when the subscription ends", async () => {
    const accountId = "acct-subscriber";
    await stack.gateway.provisionAccount(accountId);
    const session = { id: "cs_sub", object: "checkout.session", mode: "subscription", payment_status: "paid", customer: "cus_sub", subscription: "sub_1", metadata: { account_id: accountId, product_code: "pro", product_kind: "plan" } };
    const started = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_sub_1", type: "checkout.session.completed", object: session });
    assert.equal((await postWebhook(stack, started.body, started.signature)).json.applied, true);
    const afterStart = (await stack.billingClient.getAccount({ accountId })).account!;
    assert.equal(afterStart.plan?.code, "pro");
    const balanceAfterStart = await available(stack, accountId);
    // A replay does not restart the cycle or grant the plan's credits again.
    await postWebhook(stack, started.body, started.signature);
    assert.deepEqual((await stack.billingClient.getAccount({ accountId })).account!.cycleStartedAt, afterStart.cycleStartedAt);
    assert.equal(await available(stack, accountId), balanceAfterStart);

    // A renewal invoice naming no period, paid within the cycle the checkout started, pays for that
    // cycle: already granted at checkout (its grant has the cycle's own key), so nothing moves.
    const invoice = {
      id: "in_renewal",
      object: "invoice",
      billing_reason: "subscription_cycle",
      parent: { type: "subscription_details", subscription_details: { subscription: "sub_1", metadata: { account_id: accountId, plan_code: "pro" } } },
      lines: { object: "list", data: [] },
    };
    const renewed = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_sub_2", type: "invoice.paid", object: invoice });
    assert.equal((await postWebhook(stack, renewed.body, renewed.signature)).status, 200);
    assert.deepEqual((await stack.billingClient.getAccount({ accountId })).account!.cycleStartedAt, afterStart.cycleStartedAt);

    const ended = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_sub_3", type: "customer.subscription.deleted", object: { id: "sub_1", object: "subscription", status: "canceled", metadata: {} } });
    assert.equal((await postWebhook(stack, ended.body, ended.signature)).json.applied, true);
    assert.equal((await stack.billingClient.getAccount({ accountId })).account!.plan?.code, "free");
    await stack.billing.assertHealthy();
  });

  it("grants a new subscription's plan once when checkout.session.completed and customer.subscription.updated race", async () => {
    const subscriptionStarted = (accountId: string, n: string) =>
      signedStripeEvent(WEBHOOK_SECRET, {
        id: `evt_race_start_${n}`,
        type: "checkout.session.completed",
        object: { id: `cs_race_${n}`, object: "checkout.session", mode: "subscription", payment_status: "paid", customer: `cus_race_${n}`, subscription: `sub_race_${n}`, metadata: { account_id: accountId, product_code: "pro", product_kind: "plan" } },
      });
    // The control: the checkout alone, in sequence.
    await stack.gateway.provisionAccount("acct-race-control");
    const control = await subscriptionStarted("acct-race-control", "control");
    assert.equal((await postWebhook(stack, control.body, control.signature)).json.applied, true);
    const once = await available(stack, "acct-race-control");
    for (const n of ["1", "2", "3"]) {
      const accountId = `acct-race-${n}`;
      await stack.gateway.provisionAccount(accountId);
      const started = await subscriptionStarted(accountId, n);
      const updated = await signedStripeEvent(WEBHOOK_SECRET, {
        id: `evt_race_updated_${n}`,
        type: "customer.subscription.updated",
        object: { id: `sub_race_${n}`, object: "subscription", status: "active", metadata: { account_id: accountId, plan_code: "pro" } },
      });
      // The update is sent first: it reads one more thing (the plans) before it reads the account.
      const answers = await Promise.all([postWebhook(stack, updated.body, updated.signature), postWebhook(stack, started.body, started.signature)]);
      assert.deepEqual(answers.map((answer) => answer.status), [200, 200]);
      assert.equal((await stack.billingClient.getAccount({ accountId })).account!.plan?.code, "pro");
      assert.equal(await available(stack, accountId), once, `${accountId}: the plan's credits are granted once`);
    }
    // Billing's side, made certain: two changes that both saw free, at once; one changes, the other is told plan_changed.
    await stack.gateway.provisionAccount("acct-race-billing");
    const changes = await Promise.allSettled([1, 2].map(() => stack.billingClient.changePlan({ accountId: "acct-race-billing", planCode: "pro", fromPlanCode: "free" })));
    assert.equal(changes.filter((change) => change.status === "fulfilled").length, 1);
    const refusal = changes.find((change) => change.status === "rejected")?.reason;
    assert.ok(refusal instanceof ConnectError);
    assert.deepEqual([refusal.code, reasonOf(refusal)], [Code.FailedPrecondition, "plan_changed"]);
    assert.equal(await available(stack, "acct-race-billing"), once);
    await stack.billing.assertHealthy();
  });

  it("ignores events of a subscription that is not the account's current one, and refuses a plan checkout while one is live", async () => {
    const accountId = "acct-resubscriber";
    const key = await stack.gateway.provisionAccount(accountId);
    const subscribe = async (n: string) => {
      const session = { id: `cs_resub_${n}`, object: "checkout.session", mode: "subscription", payment_status: "paid", customer: "cus_resub", subscription: `sub_resub_${n}`, metadata: { account_id: accountId, product_code: "pro", product_kind: "plan" } };
      const event = await signedStripeEvent(WEBHOOK_SECRET, { id: `evt_resub_start_${n}`, type: "checkout.session.completed", object: session });
      assert.equal((await postWebhook(stack, event.body, event.signature)).json.applied, true);
    };
    await subscribe("old");
    const endedOld = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_resub_end_old", type: "customer.subscription.deleted", object: { id: "sub_resub_old", object: "subscription", status: "canceled", metadata: { account_id: accountId } } });
    await postWebhook(stack, endedOld.body, endedOld.signature);
    assert.equal((await stack.billingClient.getAccount({ accountId })).account!.plan?.code, "free");
    await subscribe("new");
    const current = (await stack.billingClient.getAccount({ accountId })).account!;
    assert.equal(current.plan?.code, "pro");

    // The old subscription's late events (each naming the account in its metadata) move nothing.
    const lateUpdate = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_resub_late_update", type: "customer.subscription.updated", object: { id: "sub_resub_old", object: "subscription", status: "active", metadata: { account_id: accountId, plan_code: "business" } } });
    const lateInvoice = await signedStripeEvent(WEBHOOK_SECRET, {
      id: "evt_resub_late_invoice",
      type: "invoice.paid",
      object: { id: "in_resub_late", object: "invoice", billing_reason: "subscription_cycle", parent: { type: "subscription_details", subscription_details: { subscription: "sub_resub_old", metadata: { account_id: accountId, plan_code: "starter" } } }, lines: { object: "list", data: [] } },
    });
    const lateDelete = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_resub_late_delete", type: "customer.subscription.deleted", object: { id: "sub_resub_old", object: "subscription", status: "canceled", metadata: { account_id: accountId } } });
    for (const late of [lateUpdate, lateInvoice, lateDelete]) assert.equal((await postWebhook(stack, late.body, late.signature)).status, 200);
    const after = (await stack.billingClient.getAccount({ accountId })).account!;
    assert.equal(after.plan?.code, "pro");
    assert.deepEqual(after.cycleStartedAt, current.cycleStartedAt);
    const row = await (stack.billing.db as Kysely<any>).selectFrom("payment_customers").select("subscription_id").where("account_id", "=", accountId).executeTakeFirstOrThrow();
    assert.equal(row.subscription_id, "sub_resub_new");

    // A second subscription is refused: the portal changes the live one. A pack can still be bought.
    const refused = await rest(stack, key, "POST", "/v1/payments/checkout", { product_code: "business", success_url: "https://example.com/paid", cancel_url: "https://example.com/cancelled" });
    assert.deepEqual([refused.status, refused.json.errors[0].code], [400, "subscription_active"]);
    assert.match(refused.json.errors[0].title, /portal/);
    const rpcRefusal = await stack.payments.createCheckout({ productCode: "business", successUrl: "https://example.com/paid", cancelUrl: "https://example.com/cancelled" }, withKey(key)).then(() => undefined, (error: unknown) => error);
    assert.ok(rpcRefusal instanceof ConnectError);
    assert.deepEqual([rpcRefusal.code, reasonOf(rpcRefusal)], [Code.FailedPrecondition, "subscription_active"]);
    const pack = await rest(stack, key, "POST", "/v1/payments/checkout", { product_code: PACK_CODE, success_url: "https://example.com/paid", cancel_url: "https://example.com/cancelled" });
    assert.equal(pack.status, 200);
  });

  it("lets only an owner or admin start a checkout or open the portal; a member's key is refused with role_forbidden", async () => {
    const accountId = "acct-roles";
    const ownerKey = await stack.gateway.provisionAccount(accountId, { planCode: "business" });
    await stack.billingClient.setMember({ accountId, memberId: "mallory", role: "member" });
    const { key: memberKey } = await stack.gateway.apiKeys.create(accountId, { name: "mallory's", memberId: "mallory" });
    const body = { product_code: PACK_CODE, success_url: "https://example.com/paid", cancel_url: "https://example.com/cancelled" };
    for (const [path, input] of [["/v1/payments/checkout", body], ["/v1/payments/portal", { return_url: "https://example.com/account" }]] as const) {
      const refused = await rest(stack, memberKey, "POST", path, input);
      assert.deepEqual([refused.status, refused.json.errors[0].code], [403, "role_forbidden"], path);
    }
    for (const call of [
      () => stack.payments.createCheckout({ productCode: PACK_CODE, successUrl: body.success_url, cancelUrl: body.cancel_url }, withKey(memberKey)),
      () => stack.payments.createPortalSession({ returnUrl: "https://example.com/account" }, withKey(memberKey)),
    ]) {
      const refusal = await call().then(() => undefined, (error: unknown) => error);
      assert.ok(refusal instanceof ConnectError);
      assert.deepEqual([refusal.code, reasonOf(refusal)], [Code.PermissionDenied, "role_forbidden"]);
    }
    // The member still sees what is on sale; the owner buys.
    assert.equal((await rest(stack, memberKey, "GET", "/v1/payments/products")).status, 200);
    assert.equal((await rest(stack, ownerKey, "POST", "/v1/payments/checkout", body)).status, 200);
    assert.equal((await rest(stack, ownerKey, "POST", "/v1/payments/portal", { return_url: "https://example.com/account" })).status, 200);
  });

  it("takes a refunded pack's credits back from what is unspent and unheld, once per refund, leaving other grants alone", async () => {
    const accountId = "acct-refund";
    await stack.gateway.provisionAccount(accountId);
    await stack.billingClient.grant({ accountId, kind: "promo", amountMillicredits: 20_000n, idempotencyKey: "refund-promo", expiresAt: timestampFromDate(new Date(stack.billing.clock.now().getTime() + 365 * 86_400_000)) });
    const paid = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_refund_1", type: "checkout.session.completed", object: completedSession(accountId, "cs_refund") });
    assert.equal((await postWebhook(stack, paid.body, paid.signature)).json.applied, true);
    // Spend the trial (10), the promo (20; both expire sooner) and 100 of the pack; a running job holds 50 more of it.
    const spent = await stack.billingClient.reserve({ accountId, pool: Pool.API, amountMillicredits: 130_000n, idempotencyKey: "refund-spend" });
    await stack.billingClient.capture({ holdId: spent.holdId, amountMillicredits: 130_000n });
    const running = await stack.billingClient.reserve({ accountId, pool: Pool.API, amountMillicredits: 50_000n, idempotencyKey: "refund-running" });
    assert.equal(await available(stack, accountId), PACK_MILLICREDITS - 150_000n);
    const refunded = (id: string, amountRefunded: number) =>
      signedStripeEvent(WEBHOOK_SECRET, {
        id,
        type: "charge.refunded",
        object: { id: "ch_refund", object: "charge", payment_intent: "pi_cs_refund", amount: 10_000, amount_refunded: amountRefunded, currency: "usd", refunded: amountRefunded === 10_000 },
      });

    // Half refunded: half the pack's grant (277.5 credits) comes back out of the 405 unspent, unheld.
    const half = await refunded("evt_refund_2", 5_000);
    assert.equal((await postWebhook(stack, half.body, half.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), PACK_MILLICREDITS - 150_000n - 277_500n);
    // Delivered again: nothing more.
    assert.equal((await postWebhook(stack, half.body, half.signature)).json.replayed, true);
    assert.equal(await available(stack, accountId), 127_500n);

    // Refunded in full: the other half is 277.5, but only 127.5 is left unspent and unheld; the
    // running job's 50 stay held and it captures them; nothing goes below zero.
    const full = await refunded("evt_refund_3", 10_000);
    assert.equal((await postWebhook(stack, full.body, full.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), 0n);
    const captured = await stack.billingClient.capture({ holdId: running.holdId, amountMillicredits: 50_000n });
    assert.equal(captured.capturedMillicredits, 50_000n);

    // Another grant after the refunds is the account's, whole.
    await stack.billingClient.grant({ accountId, kind: "top_up", amountMillicredits: 5_000n, idempotencyKey: "refund-later" });
    assert.equal(await available(stack, accountId), 5_000n);
    const { entries } = await stack.billingClient.listLedger({ accountId, pool: Pool.API, pageSize: 100 });
    assert.deepEqual(entries.filter((entry) => entry.kind === "refund").map((entry) => entry.remainingDeltaMillicredits).sort(), [-127_500n, -277_500n].sort());
    const row = await (stack.billing.db as Kysely<any>).selectFrom("payment_purchases").selectAll().where("payment_id", "=", "pi_cs_refund").executeTakeFirstOrThrow();
    assert.equal(Number(row.refunded_minor), 10_000);

    // Billing's refund is idempotent by its own key too (a gateway that crashed before marking the event done).
    const again = await stack.billingClient.refundGrant({ accountId, bucketId: row.bucket_id, refundedMinor: 10_000n, paidMinor: 10_000n, idempotencyKey: "payment:stripe:refund:ch_refund:10000" });
    assert.deepEqual([again.replayed, again.refundedMillicredits, again.unrecoveredMillicredits], [true, 127_500n, 150_000n]);
    assert.equal(await available(stack, accountId), 5_000n);
    // A bucket of another account is not this account's to refund.
    const foreign = await stack.billingClient.refundGrant({ accountId: "acct-subscriber", bucketId: row.bucket_id, refundedMinor: 1n, paidMinor: 1n, idempotencyKey: "foreign" }).then(
      () => undefined,
      (error: unknown) => ConnectError.from(error),
    );
    assert.deepEqual([foreign?.code, foreign && reasonOf(foreign)], [Code.NotFound, "bucket_not_found"]);
    await stack.billing.assertHealthy();
  });

  it("grants a monthly subscription's cycle when its invoice is paid, once per invoice, and billing's own renewal grants nothing for it", async () => {
    const accountId = "acct-invoiced";
    await stack.gateway.provisionAccount(accountId, { grantTrial: false });
    const session = { id: "cs_inv", object: "checkout.session", mode: "subscription", payment_status: "paid", customer: "cus_inv", subscription: "sub_inv", metadata: { account_id: accountId, product_code: "growth" } };
    const started = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_inv_start", type: "checkout.session.completed", object: session });
    assert.equal((await postWebhook(stack, started.body, started.signature)).json.applied, true);
    const { account } = await stack.billingClient.getAccount({ accountId });
    assert.deepEqual([account!.plan?.code, account!.settings?.renewals], ["growth", "provider"]);
    const cycleCredits = account!.plan!.creditsPerCycleMillicredits;
    assert.equal(await available(stack, accountId), cycleCredits, "the first cycle is the checkout's");

    // Billing's renewal comes first: it starts the new cycle and grants nothing (growth rolls one cycle over, so the first cycle's credits stay).
    const nextRenewalAt = timestampDate(account!.nextRenewalAt!);
    const clock = stack.billing.clock;
    clock.advanceMs(nextRenewalAt.getTime() - clock.now().getTime() + 60_000);
    await stack.billing.ledger.renewDue();
    const renewed = (await stack.billingClient.getAccount({ accountId })).account!;
    assert.ok(timestampDate(renewed.cycleStartedAt!).getTime() === nextRenewalAt.getTime(), "the cycle renewed");
    assert.equal(await available(stack, accountId), cycleCredits, "no grant without a paid invoice");

    // Stripe's period started a few seconds before billing's cycle (checkout is processed after it).
    const invoice = (id: string) => ({
      id,
      object: "invoice",
      billing_reason: "subscription_cycle",
      amount_paid: 4_999,
      currency: "usd",
      payments: { object: "list", data: [{ object: "invoice_payment", payment: { type: "payment_intent", payment_intent: `pi_${id}` } }] },
      parent: { type: "subscription_details", subscription_details: { subscription: "sub_inv", metadata: { account_id: accountId, plan_code: "growth" } } },
      lines: { object: "list", data: [{ id: "il_inv", period: { start: Math.floor(nextRenewalAt.getTime() / 1000) - 5, end: Math.floor(nextRenewalAt.getTime() / 1000) + 30 * 86_400 } }] },
    });
    const paid = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_inv_paid", type: "invoice.paid", object: invoice("in_cycle_2") });
    assert.equal((await postWebhook(stack, paid.body, paid.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), 2n * cycleCredits);
    // The same event again, and the same invoice in another event: nothing more.
    await postWebhook(stack, paid.body, paid.signature);
    const sameInvoice = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_inv_paid_again", type: "invoice.paid", object: invoice("in_cycle_2") });
    assert.equal((await postWebhook(stack, sameInvoice.body, sameInvoice.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), 2n * cycleCredits);
    // A second invoice for the same period (Stripe never sends one, a hand-made one could) grants the cycle once.
    const otherInvoice = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_inv_other", type: "invoice.paid", object: invoice("in_cycle_2_bis") });
    await postWebhook(stack, otherInvoice.body, otherInvoice.signature);
    assert.equal(await available(stack, accountId), 2n * cycleCredits);

    // Paid just before billing's next renewal: it pays for the cycle about to begin, whose credits take effect then.
    const third = timestampDate((await stack.billingClient.getAccount({ accountId })).account!.nextRenewalAt!);
    clock.advanceMs(third.getTime() - clock.now().getTime() - 3_600_000);
    const early = { ...invoice("in_cycle_3"), lines: { object: "list", data: [{ id: "il_inv_3", period: { start: Math.floor(third.getTime() / 1000) - 5, end: Math.floor(third.getTime() / 1000) + 30 * 86_400 } }] } };
    const earlyPaid = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_inv_early", type: "invoice.paid", object: early });
    assert.equal((await postWebhook(stack, earlyPaid.body, earlyPaid.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), 2n * cycleCredits, "not spendable before its cycle");
    clock.advanceMs(2 * 3_600_000);
    await stack.billing.ledger.renewDue();
    await stack.billing.ledger.expireDueBuckets();
    // The first cycle's credits ended with their rollover; cycles 2 and 3 remain, each granted once.
    assert.equal(await available(stack, accountId), 2n * cycleCredits);
    const buckets = (await stack.billingClient.getBalance({ accountId, pool: Pool.API })).buckets.filter((bucket) => bucket.kind === "subscription");
    assert.equal(buckets.length, 2);

    // The renewal's payment can be refunded like a pack's.
    const refund = await signedStripeEvent(WEBHOOK_SECRET, {
      id: "evt_inv_refund",
      type: "charge.refunded",
      object: { id: "ch_inv", object: "charge", payment_intent: "pi_in_cycle_3", amount: 4_999, amount_refunded: 4_999, currency: "usd", refunded: true },
    });
    assert.equal((await postWebhook(stack, refund.body, refund.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), cycleCredits);

    // The subscription ends: billing grants the cycles again (free grants none).
    const ended = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_inv_end", type: "customer.subscription.deleted", object: { id: "sub_inv", object: "subscription", status: "canceled", metadata: { account_id: accountId } } });
    await postWebhook(stack, ended.body, ended.signature);
    assert.equal((await stack.billingClient.getAccount({ accountId })).account!.settings?.renewals, "ledger");
    await stack.billing.assertHealthy();
  });

  it("grants the cycle an invoice's plan line pays for, not an overage line billed in arrears; a refund of the overage takes no credits", async () => {
    const accountId = "acct-arrears";
    await stack.gateway.provisionAccount(accountId, { grantTrial: false });
    const session = { id: "cs_arrears", object: "checkout.session", mode: "subscription", payment_status: "paid", customer: "cus_arrears", subscription: "sub_arrears", metadata: { account_id: accountId, product_code: "growth" } };
    const started = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_arrears_start", type: "checkout.session.completed", object: session });
    assert.equal((await postWebhook(stack, started.body, started.signature)).json.applied, true);
    const { account } = await stack.billingClient.getAccount({ accountId });
    const cycleCredits = account!.plan!.creditsPerCycleMillicredits;
    const cycleStart = Math.floor(timestampDate(account!.cycleStartedAt!).getTime() / 1000);
    const nextRenewalAt = timestampDate(account!.nextRenewalAt!);
    const clock = stack.billing.clock;
    clock.advanceMs(nextRenewalAt.getTime() - clock.now().getTime() + 60_000);
    await stack.billing.ledger.renewDue();
    const next = Math.floor(nextRenewalAt.getTime() / 1000);
    // Line 0 is the closed cycle's metered overage (charged in arrears), line 1 a proration, line 2 the plan for the new cycle.
    const invoice = {
      id: "in_arrears_2",
      object: "invoice",
      billing_reason: "subscription_cycle",
      amount_paid: 3_000 + 100 + 4_999,
      currency: "usd",
      payments: { object: "list", data: [{ object: "invoice_payment", payment: { type: "payment_intent", payment_intent: "pi_arrears_2" } }] },
      parent: { type: "subscription_details", subscription_details: { subscription: "sub_arrears", metadata: { account_id: accountId, plan_code: "growth" } } },
      lines: {
        object: "list",
        data: [
          { id: "il_overage", amount: 3_000, period: { start: cycleStart, end: next }, pricing: { type: "price_details", price_details: { price: "price_overage" } }, parent: { type: "subscription_item_details", subscription_item_details: { proration: false } } },
          { id: "il_proration", amount: 100, period: { start: next - 86_400, end: next }, pricing: { type: "price_details", price_details: { price: "price_growth_other" } }, parent: { type: "subscription_item_details", subscription_item_details: { proration: true } } },
          { id: "il_plan", amount: 4_999, period: { start: next - 5, end: next + 30 * 86_400 }, pricing: { type: "price_details", price_details: { price: "price_growth" } }, parent: { type: "subscription_item_details", subscription_item_details: { proration: false } } },
        ],
      },
    };
    const paid = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_arrears_paid", type: "invoice.paid", object: invoice });
    assert.equal((await postWebhook(stack, paid.body, paid.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), 2n * cycleCredits, "the new cycle is granted, not answered as the closed one's replay");

    // Stripe refunds the overage and the proration: the plan's credits stay.
    const charge = (refunded: number) => ({ id: "ch_arrears", object: "charge", payment_intent: "pi_arrears_2", amount: invoice.amount_paid, amount_refunded: refunded, currency: "usd", refunded: true });
    const overageRefund = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_arrears_refund_1", type: "charge.refunded", object: charge(3_100) });
    assert.equal((await postWebhook(stack, overageRefund.body, overageRefund.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), 2n * cycleCredits, "refunding what granted no credits takes none");
    // Then the rest: the cycle's credits go, the first cycle's stay.
    const fullRefund = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_arrears_refund_2", type: "charge.refunded", object: charge(invoice.amount_paid) });
    assert.equal((await postWebhook(stack, fullRefund.body, fullRefund.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), cycleCredits);
    await stack.billing.assertHealthy();
  });

  it("links a subscription's first payment to its cycle when invoice.paid comes before the checkout and names no payment, so its refund takes the credits back", async () => {
    const accountId = "acct-first-invoice";
    await stack.gateway.provisionAccount(accountId, { grantTrial: false });
    const now = Math.floor(stack.billing.clock.now().getTime() / 1000);
    // A 2025 API version: the invoice names no PaymentIntent and its payments list is not in the payload.
    const invoice = {
      id: "in_first",
      object: "invoice",
      billing_reason: "subscription_create",
      amount_paid: 4_999,
      currency: "usd",
      parent: { type: "subscription_details", subscription_details: { subscription: "sub_first", metadata: { account_id: accountId, plan_code: "growth" } } },
      lines: { object: "list", data: [{ id: "il_first", amount: 4_999, period: { start: now, end: now + 30 * 86_400 }, parent: { type: "subscription_item_details", subscription_item_details: { proration: false } } }] },
    };
    const paid = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_first_paid", type: "invoice.paid", object: invoice });
    assert.equal((await postWebhook(stack, paid.body, paid.signature)).json.applied, true);
    assert.equal(stripeApi.requestsTo("/v1/invoice_payments").at(-1)?.form.invoice, "in_first", "the payment is asked of Stripe");
    const session = { id: "cs_first", object: "checkout.session", mode: "subscription", payment_status: "paid", customer: "cus_first", subscription: "sub_first", metadata: { account_id: accountId, product_code: "growth" } };
    const started = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_first_start", type: "checkout.session.completed", object: session });
    assert.equal((await postWebhook(stack, started.body, started.signature)).json.applied, true);
    const { account } = await stack.billingClient.getAccount({ accountId });
    assert.deepEqual([account!.plan?.code, account!.settings?.renewals], ["growth", "provider"]);
    const cycleCredits = account!.plan!.creditsPerCycleMillicredits;
    assert.equal(await available(stack, accountId), cycleCredits, "the first cycle granted once");
    const refund = await signedStripeEvent(WEBHOOK_SECRET, {
      id: "evt_first_refund",
      type: "charge.refunded",
      object: { id: "ch_first", object: "charge", payment_intent: "pi_for_in_first", amount: 4_999, amount_refunded: 4_999, currency: "usd", refunded: true },
    });
    assert.equal((await postWebhook(stack, refund.body, refund.signature)).json.applied, true);
    assert.equal(await available(stack, accountId), 0n, "the refunded first payment's credits are taken back");
    await stack.billing.assertHealthy();
  });

  it("sells an annual plan as a yearly Stripe subscription at twelve months' price, its cycles granted by billing", async () => {
    const accountId = "acct-annual";
    const key = await stack.gateway.provisionAccount(accountId);
    const { plans } = await stack.billingClient.listPlans({});
    const annual = plans.find((plan) => plan.code === "annual_lite")!;
    assert.equal(annual.termMonths, 12);
    const checkout = await rest(stack, key, "POST", "/v1/payments/checkout", { product_code: "annual_lite", success_url: "https://example.com/paid", cancel_url: "https://example.com/cancelled" });
    assert.equal(checkout.status, 200);
    const form = stripeApi.requestsTo("/v1/checkout/sessions").at(-1)!.form;
    assert.deepEqual(
      [form.mode, form["line_items[0][price_data][recurring][interval]"], form["line_items[0][price_data][unit_amount]"]],
      ["subscription", "year", String(Number(annual.monthlyPriceCents) * 12)],
    );
    // A monthly plan stays monthly.
    await rest(stack, key, "POST", "/v1/payments/checkout", { product_code: PACK_CODE, success_url: "https://example.com/paid", cancel_url: "https://example.com/cancelled" });
    const monthlyKey = await stack.gateway.provisionAccount("acct-monthly");
    await rest(stack, monthlyKey, "POST", "/v1/payments/checkout", { product_code: "growth", success_url: "https://example.com/paid", cancel_url: "https://example.com/cancelled" });
    assert.equal(stripeApi.requestsTo("/v1/checkout/sessions").at(-1)!.form["line_items[0][price_data][recurring][interval]"], "month");

    // Its one yearly invoice pays for twelve monthly grants, which billing's renewal makes.
    const session = { id: "cs_annual", object: "checkout.session", mode: "subscription", payment_status: "paid", customer: "cus_annual", subscription: "sub_annual", metadata: { account_id: accountId, product_code: "annual_lite" } };
    const started = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_annual_start", type: "checkout.session.completed", object: session });
    await postWebhook(stack, started.body, started.signature);
    assert.equal((await stack.billingClient.getAccount({ accountId })).account!.settings?.renewals, "ledger");
  });

  it("reports a subscriber's overage as metered usage: the running cycle, then what the closed cycle still owes, each once", async () => {
    const accountId = "acct-overage";
    await stack.gateway.provisionAccount(accountId, { grantTrial: false });
    const session = { id: "cs_over", object: "checkout.session", mode: "subscription", payment_status: "paid", customer: "cus_over", subscription: "sub_over", metadata: { account_id: accountId, product_code: "pro" } };
    const started = await signedStripeEvent(WEBHOOK_SECRET, { id: "evt_over_1", type: "checkout.session.completed", object: session });
    await postWebhook(stack, started.body, started.signature);
    const clock = stack.billing.clock;
    // Spend everything and 3 credits more: pro continues in overage.
    const spendInOverage = async (key: string, overage: bigint) => {
      const spendable = await available(stack, accountId);
      const hold = await stack.billingClient.reserve({ accountId, pool: Pool.API, amountMillicredits: spendable + overage, idempotencyKey: key });
      assert.equal(hold.overageMillicredits, overage);
      await stack.billingClient.capture({ holdId: hold.holdId, amountMillicredits: spendable + overage });
    };
    await spendInOverage("overage-1", 3_000n);
    // A subscriber billing does not know (read before this one): its report fails, the others' go on.
    await (stack.billing.db as Kysely<any>)
      .insertInto("payment_customers")
      .values({ account_id: "acct-a-ghost", provider: "stripe", customer_id: "cus_ghost", subscription_id: "sub_ghost", subscribed_at: new Date(0) })
      .execute();
    const meterEvents = () => stripeApi.requestsTo("/v1/billing/meter_events").filter((request) => request.form["payload[stripe_customer_id]"] === "cus_over");
    const cycleStartedAt = timestampDate((await stack.billingClient.getAccount({ accountId })).account!.cycleStartedAt!);

    // Two gateways reporting at once send it once: the total is claimed before Stripe is called.
    const sent = await Promise.all([stack.gateway.reportOverage(clock.now()), stack.gateway.reportOverage(clock.now())]);
    assert.equal(sent[0] + sent[1], 1);
    assert.deepEqual(meterEvents().map((request) => [request.form["payload[value]"], request.form.identifier]), [["3000", `cutline-overage-${accountId}-${cycleStartedAt.getTime()}-3000`]]);
    assert.equal(await stack.gateway.reportOverage(clock.now()), 0, "nothing new, nothing sent");

    // 2 credits more after the last report, then the cycle renews before the next one: the closed
    // cycle's final figure (billing's cycle report) still owes 2 credits, reported inside that cycle.
    await spendInOverage("overage-2", 2_000n);
    const { account } = await stack.billingClient.getAccount({ accountId });
    clock.advanceMs(timestampDate(account!.nextRenewalAt!).getTime() - clock.now().getTime() + 1000);
    assert.ok((await stack.billing.ledger.renewDue()) >= 1);
    // Another reporter holds a fresh claim on the closed cycle: this run sends nothing and keeps
    // the cycle (the cursor stays); when that reporter fails and gives the claim back, the next run reports it.
    const overageRow = (stack.billing.db as Kysely<any>).updateTable("payment_overage_reports").where("account_id", "=", accountId).where("cycle_started_at", "=", cycleStartedAt);
    await overageRow.set({ pending_millicredits: 5_000, pending_since: clock.now() }).execute();
    assert.equal(await stack.gateway.reportOverage(clock.now()), 0);
    await overageRow.set({ pending_millicredits: null, pending_since: null }).execute();
    assert.equal(await stack.gateway.reportOverage(clock.now()), 1);
    const last = meterEvents().at(-1)!.form;
    assert.deepEqual([last["payload[value]"], last.identifier], ["2000", `cutline-overage-${accountId}-${cycleStartedAt.getTime()}-5000`]);
    assert.ok(Number(last.timestamp) * 1000 < timestampDate(account!.nextRenewalAt!).getTime(), "timestamped inside the cycle it belongs to");
    assert.equal(await stack.gateway.reportOverage(clock.now()), 0);
    assert.equal(meterEvents().length, 2);
  });
});

describe("payments through the gateway, manual provider", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack(new ManualPaymentProvider());
  });
  after(() => stack?.stop());

  it("lists products without checkout and refuses checkout with payments_not_configured", async () => {
    const key = await stack.gateway.provisionAccount("acct-manual");
    const products = await stack.payments.listProducts({}, withKey(key));
    assert.deepEqual([products.provider, products.checkoutAvailable], ["manual", false]);
    assert.ok(products.products.length > 0);
    const refusal = await stack.payments.createCheckout({ productCode: PACK_CODE, successUrl: "https://example.com/ok", cancelUrl: "https://example.com/no" }, withKey(key)).then(
      () => assert.fail("checkout should be refused"),
      (error: unknown) => ConnectError.from(error),
    );
    assert.equal(refusal.code, Code.FailedPrecondition);
    assert.equal(reasonOf(refusal), "payments_not_configured");
    assert.match(refusal.rawMessage, /admin API/);
    const portal = await stack.payments.createPortalSession({ returnUrl: "https://example.com/account" }, withKey(key)).catch((error: unknown) => ConnectError.from(error));
    assert.equal(reasonOf(portal as ConnectError), "payments_not_configured");
    const webhook = await postWebhook(stack, "{}", "t=1,v1=00");
    assert.equal(webhook.status, 400);
    const restCheckout = await rest(stack, key, "POST", "/v1/payments/checkout", { product_code: PACK_CODE, success_url: "https://example.com/ok", cancel_url: "https://example.com/no" });
    assert.deepEqual([restCheckout.status, restCheckout.json.errors[0].code], [400, "payments_not_configured"]);
    assert.equal((await rest(stack, key, "GET", "/v1/payments/products")).json.checkout_available, false);
  });

  it("keeps billing's own renewal for an account the operator put on a plan: each cycle is granted at renewal", async () => {
    const accountId = "acct-manual-renewal";
    await stack.gateway.provisionAccount(accountId, { grantTrial: false });
    await stack.billingClient.changePlan({ accountId, planCode: "growth" });
    const { account } = await stack.billingClient.getAccount({ accountId });
    assert.equal(account!.settings?.renewals, "ledger");
    const cycleCredits = account!.plan!.creditsPerCycleMillicredits;
    assert.equal(await available(stack, accountId), cycleCredits);
    const clock = stack.billing.clock;
    clock.advanceMs(timestampDate(account!.nextRenewalAt!).getTime() - clock.now().getTime() + 1000);
    assert.ok((await stack.billing.ledger.renewDue()) >= 1);
    assert.equal(await available(stack, accountId), 2n * cycleCredits, "the renewal granted the new cycle (the old one rolls over)");
    // A provider's invoice cannot grant for it too: it learns the cycle's bucket billing granted, nothing more.
    const answered = await stack.billingClient.grantCycle({ accountId, idempotencyKey: "in_manual" });
    assert.equal(answered.replayed, true);
    assert.equal(answered.bucket?.kind, "subscription");
    assert.equal(await available(stack, accountId), 2n * cycleCredits);
    await stack.billing.assertHealthy();
  });
});
