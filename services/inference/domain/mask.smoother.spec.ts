import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defaultTemporalSmoothing, lumaOf, TemporalMaskSmoother } from "./mask.smoother.ts";

const size = 64;
const options = { ...defaultTemporalSmoothing, blockSize: 8 };

/** A grey frame with a bright square at `left`. */
function frame(left: number): Uint8Array {
  const luma = new Uint8Array(size * size).fill(60);
  for (let y = 20; y < 40; y++) for (let x = left; x < left + 20; x++) luma[y * size + x] = 220;
  return luma;
}

function maskOf(left: number, noise: number): Float32Array {
  const mask = new Float32Array(size * size);
  for (let y = 20; y < 40; y++) for (let x = left; x < left + 20; x++) mask[y * size + x] = 1;
  for (let pixel = 0; pixel < mask.length; pixel++) mask[pixel] = Math.min(1, Math.max(0, mask[pixel]! + noise * Math.sin(pixel * 12.9898)));
  return mask;
}

const meanAbsoluteChange = (a: Float32Array, b: Float32Array) => a.reduce((sum, value, index) => sum + Math.abs(value - b[index]!), 0) / a.length;

describe("TemporalMaskSmoother", () => {
  test("a still picture: the mask's frame-to-frame wavering shrinks", () => {
    const smoother = new TemporalMaskSmoother(size, options);
    const still = frame(10);
    let previous: Float32Array | undefined;
    let rawChange = 0;
    let smoothChange = 0;
    let previousRaw: Float32Array | undefined;
    for (let index = 0; index < 12; index++) {
      const raw = maskOf(10, index % 2 === 0 ? 0.15 : -0.15);
      const smoothed = smoother.smooth(raw.slice(), still);
      if (previous && previousRaw) {
        rawChange += meanAbsoluteChange(raw, previousRaw);
        smoothChange += meanAbsoluteChange(smoothed, previous);
      }
      previous = smoothed.slice();
      previousRaw = raw;
    }
    assert.ok(smoothChange < rawChange * 0.5, `${smoothChange} against ${rawChange}`);
  });

  test("where the picture moves, the new mask is taken as it is: no ghost behind the subject", () => {
    const smoother = new TemporalMaskSmoother(size, options);
    smoother.smooth(maskOf(10, 0), frame(10));
    const moved = smoother.smooth(maskOf(34, 0), frame(34));
    assert.deepEqual([...moved], [...maskOf(34, 0)]);
  });

  test("retention 0 turns smoothing off; a cut drops the history", () => {
    const off = new TemporalMaskSmoother(size, { ...options, retention: 0 });
    off.smooth(maskOf(10, 0.2), frame(10));
    assert.deepEqual([...off.smooth(maskOf(10, -0.2), frame(10))], [...maskOf(10, -0.2)]);
    const cut = new TemporalMaskSmoother(size, options);
    cut.smooth(maskOf(10, 0), frame(10));
    const inverted = frame(10).map((value) => 255 - value);
    assert.deepEqual([...cut.smooth(maskOf(40, 0), inverted)], [...maskOf(40, 0)]);
    assert.equal(lumaOf(Uint8Array.from([255, 255, 255, 0, 0, 0])).join(), "255,0");
  });
});
