import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { qualityForSize, qualityOf } from "../../common/images/quality.ts";
import { OutputSize } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { modelPassesFor, qualityPassOf, settingPasses, warmupPassesFor } from "./quality.plan.ts";

describe("modelPassesFor", () => {
  it("runs each setting's passes for a full-size output; unspecified is balanced", () => {
    assert.deepEqual(modelPassesFor(Quality.FAST), [{ side: 896, mirrored: false }]);
    assert.deepEqual(modelPassesFor(Quality.BALANCED), [{ side: 1024, mirrored: false }]);
    assert.deepEqual(modelPassesFor(Quality.UNSPECIFIED), [{ side: 1024, mirrored: false }]);
    assert.deepEqual(modelPassesFor(Quality.BEST), [
      { side: 1024, mirrored: true },
      { side: 896, mirrored: true },
      { side: 1152, mirrored: true },
    ]);
  });

  it("runs a small output no finer than the multiple of 32 covering it, never under the fast side nor over the setting's", () => {
    assert.deepEqual(modelPassesFor(Quality.BALANCED, 500), [{ side: 896, mirrored: false }], "a 500 px preview needs no 1024² mask");
    assert.deepEqual(modelPassesFor(Quality.BALANCED, 900), [{ side: 928, mirrored: false }]);
    assert.deepEqual(modelPassesFor(Quality.BALANCED, 4000), [{ side: 1024, mirrored: false }]);
    assert.deepEqual(modelPassesFor(Quality.FAST, 4000), [{ side: 896, mirrored: false }]);
    assert.deepEqual(modelPassesFor(Quality.BEST, 300), [{ side: 896, mirrored: true }], "best's passes capped to one side become one, keeping the mirrored pass");
    assert.deepEqual(modelPassesFor(Quality.BEST, 950), [
      { side: 960, mirrored: true },
      { side: 896, mirrored: true },
    ]);
    assert.deepEqual(modelPassesFor(Quality.BEST, 1100), [
      { side: 1024, mirrored: true },
      { side: 896, mirrored: true },
      { side: 1120, mirrored: true },
    ]);
  });

  it("refuses a value the enum does not know, naming the allowed ones", () => {
    assert.throws(() => modelPassesFor(7 as Quality), /quality 7 is unknown; use one of fast, balanced, best/);
  });

  it("gives a video frame the setting's first pass", () => {
    assert.deepEqual(qualityPassOf(Quality.BEST), { side: 1024, mirrored: true });
    assert.deepEqual(qualityPassOf(Quality.FAST), { side: 896, mirrored: false });
  });
});

describe("warmupPassesFor", () => {
  const rowsOf = (passes: { mirrored: boolean }[]) => passes.reduce((rows, pass) => rows + (pass.mirrored ? 2 : 1), 0);

  it("fills the largest batch of a shape, as mirrored pairs where the shape mirrors", () => {
    assert.deepEqual(warmupPassesFor({ side: 1024, mirrored: false }, 8), Array.from({ length: 8 }, () => ({ side: 1024, mirrored: false })));
    const mirrored = warmupPassesFor({ side: 1024, mirrored: true }, 8);
    assert.equal(rowsOf(mirrored), 8, "eight rows, the batch's most");
    assert.ok(mirrored.every((pass) => pass.mirrored), "best's flip runs in the warm-up");
    assert.equal(rowsOf(warmupPassesFor({ side: 1024, mirrored: true }, 7)), 7, "an odd batch takes one plain image beside the mirrored ones");
  });

  it("warms a mirrored image's two rows even where a batch is one row (the CPU default)", () => {
    assert.deepEqual(warmupPassesFor({ side: 1024, mirrored: true }, 1), [{ side: 1024, mirrored: true }]);
    assert.deepEqual(warmupPassesFor({ side: 896, mirrored: false }, 1), [{ side: 896, mirrored: false }]);
  });

  it("the settings' shapes, each once", () => {
    assert.deepEqual(
      settingPasses().map((pass) => `${pass.side}${pass.mirrored ? " mirrored" : ""}`).sort(),
      ["1024", "1024 mirrored", "1152 mirrored", "896", "896 mirrored"],
    );
  });
});

describe("qualityOf", () => {
  it("parses the API names in any case, empty as the default, and names the allowed values otherwise", () => {
    assert.deepEqual(qualityOf("fast"), { ok: true, quality: Quality.FAST });
    assert.deepEqual(qualityOf(" BEST "), { ok: true, quality: Quality.BEST });
    assert.deepEqual(qualityOf("balanced"), { ok: true, quality: Quality.BALANCED });
    assert.deepEqual(qualityOf(""), { ok: true, quality: Quality.UNSPECIFIED });
    assert.deepEqual(qualityOf("ultra"), { ok: false, message: 'quality "ultra" is unknown; use one of fast, balanced, best' });
    assert.deepEqual(qualityOf(undefined, Quality.FAST), { ok: true, quality: Quality.FAST }, "not given is the API's default");
    assert.deepEqual(qualityOf("best", Quality.FAST), { ok: true, quality: Quality.BEST }, "a given name overrides it");
  });

  it("qualityForSize: a compatible API's preview is cut at fast, every larger size at balanced", () => {
    assert.equal(qualityForSize(OutputSize.PREVIEW), Quality.FAST);
    assert.equal(qualityForSize(OutputSize.FULL), Quality.BALANCED);
    assert.equal(qualityForSize(OutputSize.HD), Quality.BALANCED);
  });
});
