// The operator's CLI against a real single node (embedded PGlite, port 0): each command runs as
// its own process (`node --import tsx scripts/admin.ts ... --json`), talking HTTP to the running
// gateway, as an operator would. Also the customer-facing KeyService with member roles, on the
// keys the CLI made.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { formatCredits, parseCredits } from "../services/common/credits.ts";
import { Pool } from "../services/common/gen/cutline/billing/v1/billing_service_pb.ts";
import { KeyService } from "../services/common/gen/cutline/gateway/v1/key_service_pb.ts";
import { eventually } from "../services/common/ports/contract-support.ts";
import { startSingleNode, type SingleNode } from "../services/single-node.ts";
import { adminCli, type CliRun } from "./admin-cli.testing.ts";
import { testPhoto } from "./end-to-end.scenario.ts";

const dataDir = mkdtempSync(join(tmpdir(), "cutline-admin-cli-"));
const emptyDataDir = mkdtempSync(join(tmpdir(), "cutline-admin-cli-empty-"));
let node: SingleNode;

before(async () => {
  node = await startSingleNode({ CUTLINE_DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "warn", INFERENCE_WARMUP_RUNS: "1" });
});

after(async () => {
  await node?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(emptyDataDir, { recursive: true, force: true });
});

const { cli, cliJson } = adminCli(() => ({ CUTLINE_URL: node.url, CUTLINE_DATA_DIR: dataDir }));

/** A failed run: non-zero exit, one line on stderr matching `pattern`, no stack trace. */
function assertOneLineFailure(run: CliRun, pattern: RegExp): void {
  assert.notEqual(run.code, 0);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${run.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
}

const millicredits = (credits: number): bigint => {
  const parsed = parseCredits(String(credits));
  assert.ok(parsed.ok, `${credits} is not a decimal number of credits`);
  return parsed.millicredits;
};

async function removeBackground(apiKey: string): Promise<Response> {
  const form = new FormData();
  form.append("image_file", new Blob([await testPhoto()], { type: "image/jpeg" }), "photo.jpg");
  return fetch(`${node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": apiKey }, body: form });
}

describe("admin CLI against a running single node", () => {
  it("the gateway generated the admin token at first start, 0600 in the data directory", () => {
    assert.equal(node.adminTokenFile, join(dataDir, "admin-token"));
    assert.match(readFileSync(join(dataDir, "admin-token"), "utf8"), /^[0-9a-f]{64}\n$/);
    assert.equal(statSync(join(dataDir, "admin-token")).mode & 0o777, 0o600);
  });

  it("creates an account with credits and no trial, grants, reads the balance, changes plan and lists accounts", async () => {
    const created = await cliJson(["create-account", "--plan", "free", "--account", "acme", "--credits", "12.5"]);
    assert.deepEqual(Object.keys(created).sort(), ["accountId", "apiKey"]);
    assert.equal(created.accountId, "acme");
    assert.match(created.apiKey, /^cl_[A-Za-z0-9_-]{32}$/);
    const ledger = await node.billing.getBalance({ accountId: "acme", pool: Pool.API });
    assert.deepEqual(
      ledger.buckets.map((bucket) => [bucket.kind, bucket.grantedMillicredits, bucket.expiresAt]),
      [["top_up", 12_500n, undefined]],
      "one non-expiring top-up and no sign-up trial",
    );

    const granted = await cliJson(["grant", "--account", "acme", "--credits", "1.3", "--kind", "promo", "--expires-days", "30"]);
    assert.deepEqual(granted, { accountId: "acme", availableCredits: 13.8 });
    const promo = (await node.billing.getBalance({ accountId: "acme", pool: Pool.API })).buckets.find((bucket) => bucket.kind === "promo");
    assert.equal(promo?.grantedMillicredits, 1_300n, "1.3 credits are exactly 1300 millicredits");
    const expiresInDays = (Number(promo?.expiresAt?.seconds) * 1000 - Date.now()) / 86_400_000;
    assert.ok(expiresInDays > 29.9 && expiresInDays <= 30, `the promo expires in 30 days, not ${expiresInDays}`);

    assert.deepEqual(await cliJson(["balance", "--account", "acme"]), { accountId: "acme", availableCredits: 13.8, heldCredits: 0 });
    const readable = await cli(["balance", "--account", "acme"]);
    assert.equal(readable.stdout.trim(), "acme: 13.8 credits available, 0 held");

    assert.deepEqual(await cliJson(["change-plan", "--account", "acme", "--plan", "starter"]), { accountId: "acme", plan: "starter" });
    const afterChange = await node.billing.getBalance({ accountId: "acme", pool: Pool.API });
    const listed = await cliJson(["list-accounts"]);
    const acme = listed.accounts.find((account: { accountId: string }) => account.accountId === "acme");
    assert.deepEqual(acme, { accountId: "acme", plan: "starter", availableCredits: Number(formatCredits(afterChange.availableMillicredits)) });
    assert.ok(listed.accounts.some((account: { accountId: string }) => account.accountId === "default"), "the provisioned account is listed too");
  });

  it("refunds a charged job once: a second refund refunds nothing and says so", async () => {
    await node.ready;
    const { apiKey } = await cliJson(["create-account", "--plan", "free", "--account", "refunds", "--credits", "5"]);
    const response = await removeBackground(apiKey);
    assert.equal(response.status, 200);
    const jobId = response.headers.get("x-job-id")!;
    const charged = Number(response.headers.get("x-credits-charged"));
    assert.ok(charged > 0);
    const before = await cliJson(["balance", "--account", "refunds"]);
    assert.deepEqual(await cliJson(["refund", "--job", jobId]), { jobId, refundedCredits: charged });
    const refunded = await cliJson(["balance", "--account", "refunds"]);
    assert.equal(millicredits(refunded.availableCredits), millicredits(before.availableCredits) + millicredits(charged));
    assert.deepEqual(await cliJson(["refund", "--job", jobId]), { jobId, refundedCredits: 0 });
    const again = await cli(["refund", "--job", jobId]);
    assert.match(again.stdout, /already refunded .*nothing more was refunded/);
    assert.deepEqual(await cliJson(["balance", "--account", "refunds"]), refunded, "the second refund granted nothing");
    assertOneLineFailure(await cli(["refund", "--job", "no-such-job"]), /job no-such-job not found \(job_not_found, HTTP 404\)/);
  });

  it("creates and revokes keys; a revoked key gets 401 invalid_api_key on the API", async () => {
    await cliJson(["create-account", "--plan", "free", "--account", "keys"]);
    const key = await cliJson(["create-key", "--account", "keys", "--name", "ci"]);
    assert.deepEqual(Object.keys(key).sort(), ["apiKey", "keyId"]);
    const keys = createClient(KeyService, createConnectTransport({ baseUrl: node.url, httpVersion: "1.1" }));
    const listed = await keys.listKeys({}, { headers: { "x-api-key": key.apiKey } });
    const mine = listed.keys.find((candidate) => candidate.keyId === key.keyId);
    assert.equal(mine?.name, "ci");
    assert.equal(mine?.keyPrefix, key.apiKey.slice(0, 7));
    assert.equal(mine?.memberId, "owner", "an admin-made key acts for the account's owner");
    await eventually("the key's last use to be recorded", async () => {
      const again = await keys.listKeys({}, { headers: { "x-api-key": key.apiKey } });
      return again.keys.find((candidate) => candidate.keyId === key.keyId)?.lastUsedAt !== undefined;
    });

    assert.deepEqual(await cliJson(["revoke-key", "--key", key.keyId]), { keyId: key.keyId, revoked: true });
    const refused = await removeBackground(key.apiKey);
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { errors: { code: string }[] }).errors[0]?.code, "invalid_api_key");
    assertOneLineFailure(await cli(["revoke-key", "--key", "key_missing"]), /no API key key_missing \(key_not_found, HTTP 404\)/);
  });

  it("members manage their own keys; owners and admins everyone's", async () => {
    const { apiKey: ownerKey } = await cliJson(["create-account", "--plan", "pro", "--account", "team"]);
    await node.billing.setMember({ accountId: "team", memberId: "bob", role: "member" });
    const keys = createClient(KeyService, createConnectTransport({ baseUrl: node.url, httpVersion: "1.1" }));
    const as = (apiKey: string) => ({ headers: { "x-api-key": apiKey } });
    const bobs = await keys.createKey({ name: "bob's laptop", memberId: "bob" }, as(ownerKey));
    assert.equal(bobs.key?.memberId, "bob");
    const bobKey = bobs.apiKey;
    assert.deepEqual((await keys.listKeys({}, as(bobKey))).keys.map((key) => key.memberId), ["bob"], "a member lists their own");
    assert.deepEqual(new Set((await keys.listKeys({}, as(ownerKey))).keys.map((key) => key.memberId)), new Set(["bob", "owner"]), "the owner lists all");
    const ownerKeyId = (await keys.listKeys({ memberId: "owner" }, as(ownerKey))).keys[0]!.keyId;
    for (const refused of [
      keys.createKey({ memberId: "owner" }, as(bobKey)),
      keys.listKeys({ memberId: "owner" }, as(bobKey)),
      keys.revokeKey({ keyId: ownerKeyId }, as(bobKey)),
    ]) {
      await assert.rejects(refused, (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, Code.PermissionDenied);
        assert.equal(error.metadata.get("cutline-reason"), "role_forbidden");
        return true;
      });
    }
    await assert.rejects(keys.createKey({ memberId: "carol" }, as(ownerKey)), (error: unknown) => error instanceof ConnectError && error.code === Code.NotFound);
    const second = await keys.createKey({ name: "bob's ci" }, as(bobKey));
    assert.equal(second.key?.memberId, "bob", "a member's new key is their own");
    const revoked = await keys.revokeKey({ keyId: second.key!.keyId }, as(bobKey));
    assert.ok(revoked.key?.revokedAt);
    await assert.rejects(keys.listKeys({}, as(second.apiKey)), (error: unknown) => error instanceof ConnectError && error.code === Code.Unauthenticated);
  });

  it("the admin API answers JSON errors with stable codes; a wrong or missing token is 401", async () => {
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    const missing = await fetch(`${node.url}/admin/v1/accounts`);
    assert.equal(missing.status, 401);
    const [error] = ((await missing.json()) as { errors: { title: string; code: string; detail: string }[] }).errors;
    assert.equal(error?.code, "missing_admin_token");
    assert.ok(error?.title && error.detail);
    const wrong = await fetch(`${node.url}/admin/v1/nowhere`, { headers: { authorization: "Bearer wrong-token" } });
    assert.equal(wrong.status, 401, "the token is checked before the route");
    const authorized = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const tooPrecise = await fetch(`${node.url}/admin/v1/accounts/acme/grants`, { method: "POST", headers: authorized, body: '{"credits":1.0001}' });
    assert.equal(tooPrecise.status, 400);
    assert.match(JSON.stringify(await tooPrecise.json()), /4 decimals; credits have at most 3/);
    const noAccount = await fetch(`${node.url}/admin/v1/accounts/nobody/balance`, { headers: authorized });
    assert.equal(noAccount.status, 404);
    assert.equal(((await noAccount.json()) as { errors: { code: string }[] }).errors[0]?.code, "account_not_found");
  });

  it("a wrong token, a missing token, an unreachable gateway and bad flags: one line, exit code not 0", async () => {
    assertOneLineFailure(await cli(["balance", "--account", "acme"], { CUTLINE_ADMIN_TOKEN: "x".repeat(40) }), /the admin token is wrong \(invalid_admin_token, HTTP 401\)/);
    assertOneLineFailure(await cli(["balance", "--account", "acme"], { CUTLINE_DATA_DIR: emptyDataDir }), /no admin token: set CUTLINE_ADMIN_TOKEN/);
    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    assertOneLineFailure(await cli(["balance", "--account", "acme"], { CUTLINE_URL: `http://127.0.0.1:${closed}` }), /cannot reach the gateway at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    assertOneLineFailure(await cli(["grant", "--account", "acme", "--credits", "1.0001"]), /--credits: 1\.0001 has 4 decimals/);
    assertOneLineFailure(await cli(["grant", "--account", "acme"]), /--credits is required/);
    assertOneLineFailure(await cli(["balance", "--acount", "acme"]), /Unknown option '--acount'/);
    assertOneLineFailure(await cli(["launch-rockets"]), /unknown command "launch-rockets"/);
    assertOneLineFailure(await cli(["create-account", "--plan", "platinum"]), /no plan platinum \(plan_not_found, HTTP 404\)/);
    assertOneLineFailure(await cli(["create-account", "--plan", "free", "--account", "acme"]), /account_exists/);
  });
});
