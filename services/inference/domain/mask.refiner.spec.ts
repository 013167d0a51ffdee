import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { averageMasks, boxMean, estimateForeground, resizeBilinear, WindowMeans } from "./mask.refiner.ts";

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

describe("WindowMeans", () => {
  it("reads at each pixel the mean boxMean gives there, windows clipped at the borders alike", () => {
    const [width, height] = [13, 7];
    const values = Float32Array.from({ length: width * height }, (_, index) => ((index * 2654435761) >>> 24) / 255);
    for (const radius of [1, 3, 20]) {
      const windows = new WindowMeans(width, height, radius);
      const table = windows.table(values);
      const expected = boxMean(values, width, height, radius);
      for (let pixel = 0; pixel < values.length; pixel++) {
        assert.ok(Math.abs(windows.meanAt(table, pixel) - expected[pixel]!) < 1e-6, `radius ${radius}, pixel ${pixel}: ${windows.meanAt(table, pixel)} vs ${expected[pixel]}`);
      }
    }
  });
});

describe("resizeBilinear", () => {
  it("at listed pixels only: the same values there as the whole resize, 0 elsewhere", () => {
    const source = plane(5, (x, y) => (x * 7 + y * 3) / 40);
    const region = { left: 2, top: 1, width: 9, height: 6 };
    const whole = resizeBilinear(source, 12, 8, region);
    const listed = Int32Array.from([0, 4, 13, 30, 53]);
    const sampled = resizeBilinear(source, 12, 8, region, listed);
    for (let local = 0; local < whole.length; local++) assert.equal(sampled[local], listed.includes(local) ? whole[local] : 0, `pixel ${local}`);
  });
});

describe("estimateForeground", () => {
  // A red subject over a blue background, mixed by an α ramp across the middle columns: where α
  // is fractional the photo shows purple, which composited on a new background is a blue halo.
  const [width, height] = [120, 40];
  const alphaAt = (x: number) => Math.round(Math.min(1, Math.max(0, (x - 50) / 20)) * 255);
  const alpha = Uint8Array.from({ length: width * height }, (_, pixel) => alphaAt(pixel % width));
  const pixels = new Uint8Array(width * height * 4);
  for (let pixel = 0; pixel < width * height; pixel++) {
    const a = alpha[pixel]! / 255;
    pixels.set([Math.round(255 * a), 0, Math.round(255 * (1 - a)), 255], pixel * 4);
  }
  const estimate = estimateForeground({ pixels, channels: 4, width, height }, alpha);

  it("moves every fractional pixel's colour well towards the subject's (red), away from the old background's", () => {
    const distanceToRed = (rgb: ArrayLike<number>) => Math.hypot(255 - rgb[0]!, rgb[1]!, rgb[2]!);
    for (let x = 51; x < 70; x++) {
      const pixel = 20 * width + x;
      const estimated = estimate.subarray(pixel * 3, pixel * 3 + 3);
      const observed = pixels.subarray(pixel * 4, pixel * 4 + 3);
      assert.ok(distanceToRed(estimated) <= 0.7 * distanceToRed(observed), `column ${x} (α ${alpha[pixel]}): estimated ${estimated.join(",")}, observed ${observed.join(",")}`);
    }
  });

  it("keeps opaque and transparent pixels as observed", () => {
    for (let pixel = 0; pixel < width * height; pixel++) {
      if (alpha[pixel] !== 0 && alpha[pixel] !== 255) continue;
      assert.deepEqual([...estimate.subarray(pixel * 3, pixel * 3 + 3)], [...pixels.subarray(pixel * 4, pixel * 4 + 3)], `pixel ${pixel}`);
    }
  });
});
