import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  averageMasks,
  bandRegionOf,
  boxMean,
  createRefineFrame,
  defaultRefineOptions,
  estimateForeground,
  foregroundRegionOf,
  fuseMasks,
  refinePhase,
  refineWhole,
  resizeBilinear,
  stripesOf,
  WindowMeans,
  type Region,
} from "./mask.refiner.ts";

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

  it("weighs the masks at the largest one's size", () => {
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

describe("fuseMasks", () => {
  const disc = (side: number, centre: number) => plane(side, (x, y) => ((x - centre) ** 2 + (y - side / 2) ** 2 < (side / 4) ** 2 ? 1 : 0));

  it("averages one or two views as averageMasks does", () => {
    const views = [
      { plane: disc(8, 4), weight: 1 },
      { plane: disc(8, 2), weight: 1 },
    ];
    assert.deepEqual(fuseMasks(views), averageMasks(views));
    assert.equal(fuseMasks([views[0]!]), views[0]!.plane);
  });

  it("from three views, weighs down the one that disagrees with the others", () => {
    // Two views see the subject on the left; a third, wrong, sees it on the right.
    const [left, wrong] = [disc(16, 4), disc(16, 12)];
    const fused = fuseMasks([
      { plane: left, weight: 1 },
      { plane: left, weight: 1 },
      { plane: wrong, weight: 1 },
    ]);
    const mean = averageMasks([
      { plane: left, weight: 1 },
      { plane: left, weight: 1 },
      { plane: wrong, weight: 1 },
    ]);
    const atWrongOnly = 8 * 16 + 13; // inside the wrong disc, outside the left one
    assert.equal(left.data[atWrongOnly], 0);
    assert.equal(wrong.data[atWrongOnly], 1);
    assert.ok(Math.abs(mean.data[atWrongOnly]! - 1 / 3) < 1e-6);
    // The left views agree with the mean's foreground fully (IoU 1); the wrong one, apart from it, not at all (0).
    assert.equal(fused.data[atWrongOnly], 0, "the wrong view's weight is its IoU with the mean squared: 0");
    assert.deepEqual([fused.width, fused.height], [16, 16]);
  });

  it("fuses views of different sides at the largest one's size", () => {
    const fused = fuseMasks([
      { plane: disc(16, 8), weight: 1 },
      { plane: disc(8, 4), weight: 1 },
      { plane: disc(12, 6), weight: 1 },
    ]);
    assert.deepEqual([fused.width, fused.height], [16, 16]);
    assert.ok(fused.data[8 * 16 + 8]! > 0.99, "the centre is foreground in every view");
    assert.ok(fused.data[0]! < 0.01, "a corner is background in every view");
  });

  it("falls back to the plain mean when no view shares foreground with it", () => {
    // Each view just above 0.5 in a different third: the mean is under 0.5 everywhere.
    const third = (index: number) => plane(6, (x) => (Math.floor(x / 2) === index ? 0.6 : 0));
    const views = [0, 1, 2].map((index) => ({ plane: third(index), weight: 1 }));
    const fused = fuseMasks(views);
    assert.ok(fused.data.every((value) => Number.isFinite(value)));
    assert.deepEqual(fused, averageMasks(views));
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
      const estimated = estimate.subarray(pixel * 4, pixel * 4 + 3);
      const observed = pixels.subarray(pixel * 4, pixel * 4 + 3);
      assert.ok(distanceToRed(estimated) <= 0.7 * distanceToRed(observed), `column ${x} (α ${alpha[pixel]}): estimated ${estimated.join(",")}, observed ${observed.join(",")}`);
    }
  });

  it("keeps opaque pixels as observed, zeroes transparent ones' colour, and carries the alpha", () => {
    for (let pixel = 0; pixel < width * height; pixel++) {
      assert.equal(estimate[pixel * 4 + 3], alpha[pixel], `pixel ${pixel}'s alpha`);
      if (alpha[pixel] === 255) assert.deepEqual([...estimate.subarray(pixel * 4, pixel * 4 + 3)], [...pixels.subarray(pixel * 4, pixel * 4 + 3)], `pixel ${pixel}`);
      if (alpha[pixel] === 0) assert.deepEqual([...estimate.subarray(pixel * 4, pixel * 4 + 3)], [0, 0, 0], `pixel ${pixel}`);
    }
  });
});

describe("refinement in stripes", () => {
  // A textured photo-like image and a soft, wavy mask whose unsure band crosses every stripe cut.
  const [width, height, side] = [301, 410, 64];
  const pixels = new Uint8Array(width * height * 4);
  for (let pixel = 0; pixel < width * height; pixel++) {
    const [x, y] = [pixel % width, Math.floor(pixel / width)];
    const inside = Math.hypot(x - 150, y - 200) < 110 + 12 * Math.sin(y / 9);
    pixels.set([inside ? 200 - (y % 37) : 30 + (x % 23), (x * y) % 251, inside ? 40 : 180 + (y % 50), 255], pixel * 4);
  }
  const mask = plane(side, (x, y) => 1 / (1 + Math.exp((Math.hypot(x - 32, y - 31) - 17 - 2 * Math.sin(y / 3)) * 1.3)));
  const image = { pixels, channels: 4, width, height };
  const whole = createRefineFrame(image, mask, defaultRefineOptions, false);
  refineWhole(whole);

  /** The phases stripe by stripe in this thread, each phase's stripes from `stripesFor` of its region. */
  function inStripes(stripesFor: (region?: Region) => { top: number; bottom: number }[]) {
    const frame = createRefineFrame(image, mask, defaultRefineOptions, false);
    const band = bandRegionOf(frame, stripesFor().map((rows) => refinePhase(frame, "upscale", rows, undefined)));
    const foreground = foregroundRegionOf(frame, stripesFor(band).map((rows) => refinePhase(frame, "alpha", rows, band)));
    stripesFor(foreground).forEach((rows) => refinePhase(frame, "subject", rows, foreground));
    return frame;
  }

  it("has edges to refine: a band of fractional alpha with colours estimated there", () => {
    const fractional = whole.alpha.filter((value) => value > 0 && value < 255).length;
    assert.ok(fractional > 500, `${fractional} fractional pixels`);
  });

  for (const count of [2, 3, 5]) {
    it(`gives the whole image's alpha and cut-out, byte for byte, in ${count} stripes`, () => {
      const striped = inStripes((region) => stripesOf(width, height, count, 1, region));
      assert.deepEqual(striped.alpha, whole.alpha);
      assert.deepEqual(striped.subject, whole.subject);
    });
  }

  it("gives them too when a phase's stripes differ from the one before's", () => {
    let call = 0;
    const striped = inStripes(() => stripesOf(width, height, 2 + (call++ % 3), 1));
    assert.deepEqual(striped.alpha, whole.alpha);
    assert.deepEqual(striped.subject, whole.subject);
  });

  it("cuts on the wide pass's cell rows, covers every row once, and shares a busy region's rows about equally", () => {
    const busy = { left: 0, top: 100, width, height: 200 };
    const stripes = stripesOf(width, height, 4, 1, busy);
    assert.equal(stripes.length, 4);
    assert.equal(stripes[0]!.top, 0);
    assert.equal(stripes.at(-1)!.bottom, height);
    // 410 rows: a wide radius of 37 pixels, cells of 6 rows.
    for (const [index, rows] of stripes.entries()) {
      if (index > 0) assert.equal(rows.top, stripes[index - 1]!.bottom);
      if (index > 0) assert.equal(rows.top % 6, 0, `stripe ${index} starts at row ${rows.top}`);
      const busyRows = Math.min(rows.bottom, 300) - Math.max(rows.top, 100);
      assert.ok(Math.abs(busyRows - 50) <= 6, `stripe ${index} has ${busyRows} of the busy rows`);
    }
  });

  it("keeps stripes at least rowsMin rows, down to one for a short image", () => {
    assert.equal(stripesOf(width, 90, 2, 96).length, 1);
    assert.equal(stripesOf(width, height, 8, 96).length, 4);
  });
});
