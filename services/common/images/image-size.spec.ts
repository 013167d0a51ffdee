import assert from "node:assert/strict";
import { test } from "node:test";
import { longestSideFor, processedSize } from "./image-size.ts";

test("an image is processed at its size when it fits, else scaled to the longest side", () => {
  assert.deepEqual(processedSize(800, 600, 4096), { width: 800, height: 600 });
  assert.deepEqual(processedSize(8000, 6000, 4000), { width: 4000, height: 3000 });
  assert.deepEqual(processedSize(5000, 1, 1000), { width: 1000, height: 1 });
});

test("the plan sets the longest side, HD or not; IMAGE_LONGEST_SIDE_PRO is its ceiling; without a plan, the size preset's", () => {
  const limits = { standard: 4096, pro: 8192 };
  assert.equal(longestSideFor(false, limits, 0), 4096);
  assert.equal(longestSideFor(true, limits, 0), 8192);
  assert.equal(longestSideFor(true, limits, 4096), 4096, "a standard-class plan asking for HD stays at 4096");
  assert.equal(longestSideFor(false, limits, 8192), 8192, "a pro-class plan gets 8192 without asking for HD");
  assert.equal(longestSideFor(true, limits, 6000), 6000);
  assert.equal(longestSideFor(false, limits, 12_000), 8192, "no plan passes IMAGE_LONGEST_SIDE_PRO");
});
