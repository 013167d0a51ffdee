import assert from "node:assert/strict";
import { test } from "node:test";
import { boxOnCanvas, layoutSubject } from "./subject.layout.ts";

const options = { cropToSubject: false, cropMarginPercent: 0, aspectRatio: "", subjectScalePercent: 0, subjectPosition: "" };

/** A 100x80 mask with the subject at x 20..59, y 10..49 (a 40x40 box). */
function mask(): Uint8Array {
  const alpha = new Uint8Array(100 * 80);
  for (let y = 10; y < 50; y++) alpha.fill(255, y * 100 + 20, y * 100 + 60);
  return alpha;
}

test("the layout keeps the subject's box; an empty mask has none", () => {
  assert.deepEqual(layoutSubject(mask(), 100, 80, options).subject, { left: 20, top: 10, width: 40, height: 40 });
  assert.equal(layoutSubject(new Uint8Array(100 * 80), 100, 80, options).subject, undefined);
});

test("the subject's box lands on the output through the layout's mapping and scale", () => {
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
