// Batches through the REST job API on a real single node: twenty images, one of them bad.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IMAGE_MILLICREDITS, publicApiNode, TRIAL_MILLICREDITS, type BatchJson } from "./public-api.testing.ts";

// Nineteen model runs: about 20 s on an idle CPU, many times that on one shared with other work;
// within the runner's 300 s for the whole file, start-up included.
const BATCH_TIMEOUT_MS = 240_000;

describe("REST batches on a single node", () => {
  const api = publicApiNode("public-api-batch");
  const { account, balance, errorOf } = api;
  it("a batch of 20 with one bad item: the bad one has an error and costs nothing, the others succeed, each charged once; a replay charges nothing more", async () => {
    const { accountId, key } = await account();
    const form = new FormData();
    const BAD_INDEX = 7;
    for (let index = 0; index < 20; index++) {
      const data = index === BAD_INDEX ? new TextEncoder().encode("%PDF-1.7 not an image") : index % 2 ? api.photo : api.otherPhoto;
      form.append("image_file", new Blob([data]), `item-${index}.png`);
    }
    const post = (body: FormData) => fetch(`${api.node.url}/v1/matting/batch`, { method: "POST", headers: { "x-api-key": key, "idempotency-key": "batch-one" }, body });
    const response = await post(form);
    assert.equal(response.status, 202, await response.clone().text());
    const batch = (await response.json()) as BatchJson;
    assert.equal(batch.items.length, 20);
    assert.deepEqual(batch.items.map((item) => item.index), [...Array(20).keys()]);
    const bad = batch.items[BAD_INDEX]!;
    assert.equal(bad.job, null);
    assert.equal(bad.error?.code, "unsupported_format");
    for (const item of batch.items.filter((candidate) => candidate.index !== BAD_INDEX)) {
      assert.equal(item.error, null);
      assert.ok(item.job?.id);
    }

    const current = await api.pollBatchUntilDone(key, batch.batch_id, BATCH_TIMEOUT_MS);
    for (const item of current.items.filter((candidate) => candidate.index !== BAD_INDEX)) {
      assert.equal(item.job?.status, "succeeded", JSON.stringify(item));
      assert.equal(item.job?.credits_charged, 0.5);
      assert.ok(item.job?.result_url);
    }
    const charged = TRIAL_MILLICREDITS - 19n * IMAGE_MILLICREDITS;
    assert.deepEqual(await balance(accountId), { available: charged, held: 0n });

    const replay = await post(form);
    assert.equal(replay.status, 202);
    const replayed = (await replay.json()) as BatchJson;
    assert.equal(replayed.batch_id, batch.batch_id);
    assert.deepEqual(replayed.items.map((item) => item.job?.id ?? null), batch.items.map((item) => item.job?.id ?? null));
    assert.deepEqual(await balance(accountId), { available: charged, held: 0n }, "the replay charged nothing");

    const different = new FormData();
    different.append("image_file", new Blob([api.photo]), "one.png");
    const reused = await post(different);
    assert.equal(reused.status, 422);
    assert.equal((await errorOf(reused)).code, "idempotency_key_reused");

    const stranger = await account();
    const hidden = await fetch(`${api.node.url}/v1/batches/${batch.batch_id}`, { headers: { "x-api-key": stranger.key } });
    assert.equal(hidden.status, 404);
    assert.equal((await errorOf(hidden)).code, "batch_not_found");
  });
});
