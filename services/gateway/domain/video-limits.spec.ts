import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { PlanSchema } from "../../common/gen/cutline/billing/v1/billing_service_pb.ts";
import { PRO_VIDEO_LIMITS, STANDARD_VIDEO_LIMITS, videoLimitsOf } from "./video-limits.ts";

test("a plan's video limits: its class's defaults (pro-class by its 8192 px images), its own fields where it sets them", () => {
  assert.deepEqual(videoLimitsOf(undefined), STANDARD_VIDEO_LIMITS);
  assert.deepEqual(videoLimitsOf(create(PlanSchema, { longestSidePixels: 4096 })), STANDARD_VIDEO_LIMITS);
  assert.deepEqual(videoLimitsOf(create(PlanSchema, { longestSidePixels: 8192 })), PRO_VIDEO_LIMITS);
  assert.deepEqual([STANDARD_VIDEO_LIMITS.secondsMax, STANDARD_VIDEO_LIMITS.bytesMax], [60, 200 * 1024 * 1024]);
  assert.deepEqual([PRO_VIDEO_LIMITS.secondsMax, PRO_VIDEO_LIMITS.bytesMax], [300, 1024 * 1024 * 1024]);
  // The catalogue's fields, where a plan carries them, win over the class defaults.
  const catalogued = Object.assign(create(PlanSchema, { longestSidePixels: 4096 }), { planClass: "pro", videoSecondsMax: 120, videoBytesMax: 5000n, videoLongestSidePixels: 1280 });
  assert.deepEqual(videoLimitsOf(catalogued), { planClass: "pro", secondsMax: 120, bytesMax: 5000, longestSidePixels: 1280 });
});
