import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InferenceError } from "./inference.errors.ts";
import { boxOnCanvas, layoutSubject, smartCropLayout } from "./subject.layout.ts";

const options = { cropToSubject: false, cropMarginPercent: 0, aspectRatio: "", subjectScalePercent: 0, subjectPosition: "" };

/** A 100x80 mask with the subject at x 20..59, y 10..49 (a 40x40 box). */
function mask(): Uint8Array {
  const alpha = new Uint8Array(100 * 80);
  for (let y = 10; y < 50; y++) alpha.fill(255, y * 100 + 20, y * 100 + 60);
  return alpha;
}

describe("layoutSubject and boxOnCanvas", () => {
  it("the layout keeps the subject's box; an empty mask has none", () => {
    assert.deepEqual(layoutSubject(mask(), 100, 80, options).subject, { left: 20, top: 10, width: 40, height: 40 });
    assert.equal(layoutSubject(new Uint8Array(100 * 80), 100, 80, options).subject, undefined);
  });

  it("the subject's box lands on the output through the layout's mapping and scale", () => {
    const box = { left: 20, top: 10, width: 40, height: 40 };
    // Unchanged layout, output at half size.
    assert.deepEqual(boxOnCanvas(box, { left: 0, top: 0, width: 100, height: 80 }, { left: 0, top: 0, width: 50, height: 40 }, { width: 50, height: 40 }), { left: 10, top: 5, width: 20, height: 20 });
    // Cropped to the subject with a 10% margin: the box sits 4 px in from each side.
    const cropped = layoutSubject(mask(), 100, 80, { ...options, cropToSubject: true, cropMarginPercent: 10 });
    assert.deepEqual(boxOnCanvas(box, cropped.source, cropped.destination, { width: cropped.canvasWidth, height: cropped.canvasHeight }), { left: 4, top: 4, width: 40, height: 40 });
    // Scaled to 50% of the canvas and centred: 40x40 fills half of the 80 px height, centred.
    const scaled = layoutSubject(mask(), 100, 80, { ...options, subjectScalePercent: 50 });
    assert.deepEqual(boxOnCanvas(box, scaled.source, scaled.destination, { width: 100, height: 80 }), { left: 30, top: 20, width: 40, height: 40 });
    // Past the canvas: clipped; wholly outside: none.
    assert.deepEqual(boxOnCanvas(box, { left: 0, top: 0, width: 100, height: 80 }, { left: -30, top: 0, width: 100, height: 80 }, { width: 40, height: 80 }), { left: 0, top: 10, width: 30, height: 40 });
    assert.equal(boxOnCanvas(box, { left: 0, top: 0, width: 100, height: 80 }, { left: -70, top: 0, width: 100, height: 80 }, { width: 10, height: 80 }), undefined);
  });
});

/** A width×height mask with the subject (alpha 255) filling the given box. */
function maskWith(width: number, height: number, box: { left: number; top: number; width: number; height: number }): Uint8Array {
  const alpha = new Uint8Array(width * height);
  for (let y = box.top; y < box.top + box.height; y++) alpha.fill(255, y * width + box.left, y * width + box.left + box.width);
  return alpha;
}

describe("smartCropLayout", () => {
  const subject = { left: 100, top: 80, width: 40, height: 60 };
  const alpha = maskWith(400, 300, subject);

  it("crops to the subject's box plus the margin, unscaled and inside the image", () => {
    assert.deepEqual(smartCropLayout(alpha, 400, 300, { cropMarginPercent: 0, aspectRatio: "" }).source, subject);
    const layout = smartCropLayout(alpha, 400, 300, { cropMarginPercent: 10, aspectRatio: "" });
    assert.deepEqual(layout.source, { left: 96, top: 74, width: 48, height: 72 });
    assert.deepEqual([layout.canvasWidth, layout.canvasHeight], [48, 72]);
    assert.deepEqual(layout.destination, { left: 0, top: 0, width: 48, height: 72 });
  });

  it("grows the box to the ratio, centred on the subject", () => {
    const wide = smartCropLayout(alpha, 400, 300, { cropMarginPercent: 0, aspectRatio: "16:9" });
    assert.deepEqual(wide.source, { left: 67, top: 80, width: 107, height: 60 });
    const square = smartCropLayout(alpha, 400, 300, { cropMarginPercent: 0, aspectRatio: "1:1" });
    assert.deepEqual(square.source, { left: 90, top: 80, width: 60, height: 60 });
  });

  it("never invents padding: a window past the edge moves inside, one too large shrinks keeping the ratio", () => {
    const cornered = smartCropLayout(maskWith(400, 300, { left: 0, top: 0, width: 40, height: 40 }), 400, 300, { cropMarginPercent: 50, aspectRatio: "" });
    assert.deepEqual(cornered.source, { left: 0, top: 0, width: 80, height: 80 }, "the 80 px window, moved off the edge");
    const tall = smartCropLayout(alpha, 400, 300, { cropMarginPercent: 200, aspectRatio: "9:16" });
    assert.equal(tall.source.height, 300, "as tall as the image");
    assert.equal(tall.source.width, Math.round(300 * (9 / 16)));
    assert.ok(tall.source.left >= 0 && tall.source.left + tall.source.width <= 400);
    const everything = smartCropLayout(new Uint8Array(400 * 300), 400, 300, { cropMarginPercent: 0, aspectRatio: "1:1" });
    assert.deepEqual(everything.source, { left: 50, top: 0, width: 300, height: 300 }, "an empty mask: the whole image at the ratio, centred");
  });

  it("refuses a bad ratio or margin by name", () => {
    for (const [options, message] of [
      [{ cropMarginPercent: 0, aspectRatio: "0:1" }, /aspect_ratio "0:1" is not a ratio/],
      [{ cropMarginPercent: 0, aspectRatio: "wide" }, /aspect_ratio "wide" is not a ratio/],
      [{ cropMarginPercent: 1001, aspectRatio: "" }, /crop_margin_percent 1001 is not a whole number of percent from 0 to 1000/],
    ] as const) {
      assert.throws(() => smartCropLayout(alpha, 400, 300, options), (error: unknown) => error instanceof InferenceError && error.reason === "invalid_option" && message.test(error.message));
    }
  });
});
