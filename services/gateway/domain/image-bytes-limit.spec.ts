import assert from "node:assert/strict";
import { test } from "node:test";
import { imageBytesLimitOf } from "./image-bytes-limit.ts";

test("the smallest byte limit applies and is named; the plan's wins a tie, and a plan limit of 0 is none", () => {
  const service = { uploadBytesMax: 25_000_000, imageBytesMax: 20_000_000, outboundBytesMax: 30_000_000 };
  assert.deepEqual(imageBytesLimitOf(undefined, service), { bytesMax: 20_000_000, name: "IMAGE_BYTES_MAX" });
  assert.deepEqual(imageBytesLimitOf({ name: "Free", maxUploadBytes: 5_000_000n }, service), { bytesMax: 5_000_000, name: "the Free plan's upload limit" });
  assert.deepEqual(imageBytesLimitOf({ name: "Free", maxUploadBytes: 20_000_000n }, service), { bytesMax: 20_000_000, name: "the Free plan's upload limit" });
  assert.deepEqual(imageBytesLimitOf({ name: "Unlimited", maxUploadBytes: 0n }, service), { bytesMax: 20_000_000, name: "IMAGE_BYTES_MAX" });
  assert.deepEqual(imageBytesLimitOf(undefined, { ...service, outboundBytesMax: 1000 }), { bytesMax: 1000, name: "OUTBOUND_BYTES_MAX" });
  assert.deepEqual(imageBytesLimitOf(undefined, { uploadBytesMax: 7 }), { bytesMax: 7, name: "UPLOAD_BYTES_MAX" });
});
