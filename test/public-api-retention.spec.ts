// Retention over REST on a real single node (PGlite, in-process adapters, the real model): the
// account setting (PUT /v1/account/settings), zero retention (per call and per account), and the
// orchestrator's retention sweeper deleting files once an account's retention has run out.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { IMAGE_MILLICREDITS, publicApiNode, TRIAL_MILLICREDITS, type JobJson } from "./public-api.testing.ts";

/** The free plan's choice when credits run out, which these accounts never change. */
const STOP_BY_PLAN = { on_exhausted: "stop", on_exhausted_is_plan_default: true };

describe("retention over REST", () => {
  const api = publicApiNode("retention");
  const { account, balance, imageForm, errorOf, getJob, pollUntilDone } = api;
  const blobFiles = () => readdirSync(join(api.dataDir, "blobs")).filter((name) => !name.endsWith(".tmp")).length;
  const settings = (key: string, body?: unknown) =>
    fetch(`${api.node.url}/v1/account/settings`, body === undefined ? { headers: { "x-api-key": key } } : { method: "PUT", headers: { "x-api-key": key, "content-type": "application/json" }, body: JSON.stringify(body) });

  it("settings: 24 h by default; 0 to 24 whole hours accepted; anything else is a 400 naming the limit or the field", async () => {
    const { key } = await account();
    assert.deepEqual(await (await settings(key)).json(), { retention_hours: 24, zero_retention: false, ...STOP_BY_PLAN });
    const set = await settings(key, { retention_hours: 2 });
    assert.equal(set.status, 200);
    assert.deepEqual(await set.json(), { retention_hours: 2, zero_retention: false, ...STOP_BY_PLAN });
    assert.deepEqual(await (await settings(key)).json(), { retention_hours: 2, zero_retention: false, ...STOP_BY_PLAN });
    const tooLong = await settings(key, { retention_hours: 25 });
    assert.equal(tooLong.status, 400);
    assert.match((await errorOf(tooLong)).title, /0 \(zero retention\) to 24 \(RETENTION_HOURS_MAX\); got 25/);
    for (const body of [{ retention_hours: 1.5 }, { retention_hours: "1" }, { keep: 1 }]) {
      const refused = await settings(key, body);
      assert.equal(refused.status, 400, JSON.stringify(body));
      assert.equal((await errorOf(refused)).code, "invalid_option");
    }
    assert.equal((await fetch(`${api.node.url}/v1/account/settings`)).status, 401, "the caller's own account only, by its key");
  });

  it("retention=none: the synchronous response carries the result and nothing is kept; with async=true it is a 400 before any hold", async () => {
    const { accountId, key } = await account();
    const before = blobFiles();
    const response = await fetch(`${api.node.url}/v1/matting?retention=none`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(api.photo) });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "image/png");
    assert.ok((await response.arrayBuffer()).byteLength > 0);
    const jobId = response.headers.get("x-job-id")!;
    assert.equal(blobFiles(), before, "the input and the result were deleted after the response");
    const job = await getJob(key, jobId);
    assert.deepEqual([job.status, job.result_url, job.credits_charged], ["succeeded", null, 0.5]);
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - IMAGE_MILLICREDITS, held: 0n });

    const refused = await fetch(`${api.node.url}/v1/matting?async=true&retention=none`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(api.photo) });
    assert.equal(refused.status, 400);
    assert.equal((await errorOf(refused)).code, "zero_retention_async");
    const typo = await fetch(`${api.node.url}/v1/matting?retention=never`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(api.photo) });
    assert.equal(typo.status, 400);
    assert.equal((await errorOf(typo)).code, "invalid_option");
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - IMAGE_MILLICREDITS, held: 0n }, "the refusals held and charged nothing");
  });

  it("an account with retention_hours 0 keeps nothing of its synchronous calls and is refused asynchronous ones, its credits returned", async () => {
    const { accountId, key } = await account();
    assert.equal((await settings(key, { retention_hours: 0 })).status, 200);
    assert.deepEqual(await (await settings(key)).json(), { retention_hours: 0, zero_retention: true, ...STOP_BY_PLAN });
    const before = blobFiles();
    const response = await fetch(`${api.node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(api.otherPhoto) });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    assert.equal(blobFiles(), before, "nothing kept");
    const refused = await fetch(`${api.node.url}/v1/matting?async=true`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(api.photo) });
    assert.equal(refused.status, 400);
    const error = await errorOf(refused);
    assert.equal(error.code, "zero_retention_async");
    assert.match(error.title, /retention is 0 hours/);
    assert.equal(blobFiles(), before, "the refused call's input was deleted");
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - IMAGE_MILLICREDITS, held: 0n }, "its hold was released");
  });

  it("the sweeper deletes a job's files once its account's retention has run out, and not before; its result then reads result_expired", async () => {
    const short = await account();
    assert.equal((await settings(short.key, { retention_hours: 1 })).status, 200);
    const long = await account(); // the 24 h default
    const submit = async (key: string) => {
      const submitted = await fetch(`${api.node.url}/v1/matting?async=true`, { method: "POST", headers: { "x-api-key": key }, body: imageForm(api.photo) });
      assert.equal(submitted.status, 202);
      const done = await pollUntilDone(key, ((await submitted.json()) as JobJson).id);
      assert.equal(done.status, "succeeded");
      return done;
    };
    const shortJob = await submit(short.key);
    const longJob = await submit(long.key);
    assert.equal((await fetch(shortJob.result_url!)).status, 200);
    const filesBefore = blobFiles();
    assert.equal(await api.node.sweepRetention(new Date(Date.now() + 59 * 60_000)), 0, "59 minutes in: still kept");
    assert.ok((await api.node.sweepRetention(new Date(Date.now() + 61 * 60_000))) >= 1);
    assert.equal(blobFiles(), filesBefore - 2, "the 1-hour job's input and result were deleted");
    assert.equal((await getJob(short.key, shortJob.id)).result_url, null);
    const gone = await fetch(shortJob.result_url!);
    assert.equal(gone.status, 404);
    const error = await errorOf(gone);
    assert.deepEqual([error.code, /past its account's retention/.test(error.title)], ["result_expired", true]);
    assert.equal((await fetch(longJob.result_url!)).status, 200, "the 24-hour job's result is still there");
    assert.ok(typeof (await getJob(long.key, longJob.id)).result_url === "string");
    // Past 24 h the default retention runs out too.
    await api.node.sweepRetention(new Date(Date.now() + 25 * 3_600_000));
    assert.equal((await fetch(longJob.result_url!)).status, 404);
  });
});
