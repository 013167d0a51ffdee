import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { qualityForSize, qualityOf } from "../../common/images/quality.ts";
import { OutputSize } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { modelPassFor, settingPasses, warmupPassesFor } from "./quality.plan.ts";

describe("modelPassFor", () => {
  it("runs each setting at its side for a full-size output; unspecified is balanced", () => {
    assert.deepEqual(modelPassFor(Quality.FAST), { side: 768, mirrored: false });
    assert.deepEqual(modelPassFor(Quality.BALANCED), { side: 1024, mirrored: false });
    assert.deepEqual(modelPassFor(Quality.UNSPECIFIED), { side: 1024, mirrored: false });
    assert.deepEqual(modelPassFor(Quality.BEST), { side: 1024, mirrored: true });
  });

  it("runs a small output no finer than the multiple of 32 covering it, never under the fast side nor over the setting's", () => {
    assert.deepEqual(modelPassFor(Quality.BALANCED, 500), { side: 768, mirrored: false }, "a 500 px preview needs no 1024² mask");
    assert.deepEqual(modelPassFor(Quality.BALANCED, 900), { side: 928, mirrored: false });
    assert.deepEqual(modelPassFor(Quality.BALANCED, 4000), { side: 1024, mirrored: false });
    assert.deepEqual(modelPassFor(Quality.FAST, 4000), { side: 768, mirrored: false });
    assert.deepEqual(modelPassFor(Quality.BEST, 300), { side: 768, mirrored: true }, "best keeps its mirrored pass");
  });

  it("refuses a value the enum does not know, naming the allowed ones", () => {
    assert.throws(() => modelPassFor(7 as Quality), /quality 7 is unknown; use one of fast, balanced, best/);
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
    assert.deepEqual(warmupPassesFor({ side: 768, mirrored: false }, 1), [{ side: 768, mirrored: false }]);
  });

  it("the settings' shapes, each once", () => {
    assert.deepEqual(
      settingPasses().map((pass) => `${pass.side}${pass.mirrored ? " mirrored" : ""}`).sort(),
      ["1024", "1024 mirrored", "768"],
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
