import assert from "node:assert/strict";
import { test } from "node:test";
import { processedVideoSize, VIDEO_LONGEST_SIDE_MAX } from "./video-size.ts";

test("the processed size: never up, longest side capped, aspect kept, sides even", () => {
  assert.deepEqual(processedVideoSize({ width: 160, height: 120 }, 1920), { width: 160, height: 120 });
  assert.deepEqual(processedVideoSize({ width: 3840, height: 2160 }, 1920), { width: 1920, height: 1080 });
  assert.deepEqual(processedVideoSize({ width: 2160, height: 3840 }, 1920), { width: 1080, height: 1920 });
  assert.deepEqual(processedVideoSize({ width: 2001, height: 1001 }, 1920), { width: 1920, height: 960 });
  assert.deepEqual(processedVideoSize({ width: 3840, height: 2160 }, 0), { width: 1920, height: 1080 }, "0: the 1080p cap alone");
  assert.deepEqual(processedVideoSize({ width: 1080, height: 1920 }, 1280), { width: 720, height: 1280 });
  assert.deepEqual(processedVideoSize({ width: 3840, height: 2160 }, 4096), { width: 1920, height: 1080 }, "a plan's larger cap stops at 1080p");
  assert.deepEqual(processedVideoSize({ width: 1366, height: 768 }, 1280), { width: 1280, height: 718 }, "the longest side is the cap, not a pixel under it");
});

test("an odd-sized clip is priced at the size processed: 1281×720 is 1280×720, within the 720p tier (921 600 pixels)", () => {
  const processed = processedVideoSize({ width: 1281, height: 720 }, VIDEO_LONGEST_SIDE_MAX);
  assert.deepEqual(processed, { width: 1280, height: 720 });
  assert.ok(processed.width * processed.height <= 1280 * 720);
  assert.deepEqual(processedVideoSize({ width: 161, height: 121 }, 0), { width: 160, height: 120 });
});

test("idempotent: inference, given the gateway's longest side as its cap, processes the size the gateway priced", () => {
  for (const [width, height] of [[1281, 720], [1921, 1081], [3840, 2160], [1366, 768], [1000, 3001], [7, 5], [4095, 2161]] as const) {
    for (const cap of [0, 640, 1280, 1920]) {
      const gateway = processedVideoSize({ width, height }, cap);
      const engine = processedVideoSize({ width, height }, Math.max(gateway.width, gateway.height));
      assert.deepEqual(engine, gateway, `${width}×${height} at cap ${cap}`);
      assert.equal(gateway.width % 2, 0);
      assert.equal(gateway.height % 2, 0);
    }
  }
});
