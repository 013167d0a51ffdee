import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { averageMasks } from "./mask.refiner.ts";

const plane = (side: number, value: (x: number, y: number) => number) => ({
  data: Float32Array.from({ length: side * side }, (_, index) => value(index % side, Math.floor(index / side))),
  width: side,
  height: side,
});

describe("averageMasks", () => {
  it("returns one mask as it is", () => {
    const only = plane(4, () => 0.3);
    assert.equal(averageMasks([{ plane: only, weight: 1 }]), only);
  });

  it("weighs the masks (a mirrored pass's counts twice) at the largest one's size", () => {
    const large = plane(4, () => 0.9);
    const small = plane(2, () => 0.3);
    const mean = averageMasks([
      { plane: small, weight: 1 },
      { plane: large, weight: 2 },
    ]);
    assert.deepEqual([mean.width, mean.height], [4, 4]);
    for (const value of mean.data) assert.ok(Math.abs(value - 0.7) < 1e-6, `(2 × 0.9 + 0.3) / 3, got ${value}`);
  });

  it("upscales the smaller mask bilinearly before averaging, so an edge lands where both put it", () => {
    // Left half 1, right half 0 in both: the mean keeps the edge between columns 3 and 4 of 8.
    const mean = averageMasks([
      { plane: plane(8, (x) => (x < 4 ? 1 : 0)), weight: 1 },
      { plane: plane(4, (x) => (x < 2 ? 1 : 0)), weight: 1 },
    ]);
    const row = Array.from(mean.data.subarray(0, 8), (value) => Math.round(value * 100) / 100);
    assert.deepEqual(row, [1, 1, 1, 0.88, 0.13, 0, 0, 0]);
  });

  it("refuses an empty list", () => {
    assert.throws(() => averageMasks([]), /at least one mask/);
  });
});
