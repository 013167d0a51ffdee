// The engine's warm-up, each test on an engine of its own with a full warm-up (every setting's model
// shapes, then the refinement's loops and the decode threads), and a cut-out at every quality
// setting (best alone is six model runs): in a file of their own, as together with
// segmentation.engine.spec.ts they ran past the runner's 300 s per file beside CI's other suites.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import sharp from "sharp";
import { ImageOptionsSchema, OutputFormat } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { loadInferenceConfig } from "../inference.config.ts";
import { discPhoto } from "../testdata/disc-photo.ts";
import { closeImageDecodeThreads, imageDecodeThreadsReady } from "./image.decoder.ts";
import { createSegmentationEngine } from "./segmentation.engine.ts";

const log = pino({ level: "silent" });

describe("segmentation engine: warm-up and quality settings", () => {
  it("starts the image decode threads in its warm-up, so the first image does not wait for their boot", async () => {
    await closeImageDecodeThreads();
    const fresh = await createSegmentationEngine(loadInferenceConfig({ INFERENCE_WARMUP_RUNS: "1" }), log);
    try {
      await fresh.ready;
      await fresh.warm;
      assert.ok(imageDecodeThreadsReady() >= 1, "a decode thread is up before any image was sent");
    } finally {
      await fresh.close();
    }
  });

  it("is ready before its warm-up runs end; an image sent at once is answered, and the warm-up still finishes", async () => {
    const fresh = await createSegmentationEngine(loadInferenceConfig({ INFERENCE_WARMUP_RUNS: "1" }), log);
    try {
      await fresh.ready;
      let warmed = false;
      void fresh.warm.then(() => (warmed = true));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(warmed, false, "a full-size model run takes longer than one turn of the event loop");
      const result = await fresh.process(await discPhoto(), create(ImageOptionsSchema, { format: OutputFormat.PNG }), { highPriority: false });
      assert.deepEqual([result.width, result.height], [320, 240]);
      await fresh.warm;
      assert.equal(warmed, true);
    } finally {
      await fresh.close();
    }
  });

  it("cuts out a subject at every quality setting; an unknown setting is invalid_option", async () => {
    const engine = await createSegmentationEngine(loadInferenceConfig({ INFERENCE_WARMUP_RUNS: "0" }), log);
    try {
      await engine.ready;
      const image = await discPhoto();
      for (const quality of [Quality.FAST, Quality.BEST, Quality.BALANCED]) {
        const result = await engine.process(image, create(ImageOptionsSchema, { format: OutputFormat.PNG, quality }), { highPriority: false });
        assert.deepEqual([result.width, result.height], [320, 240]);
        const { data, info } = await sharp(result.image).raw().toBuffer({ resolveWithObject: true });
        const alphaAt = (x: number, y: number) => data[(y * info.width + x) * 4 + 3]!;
        assert.ok(alphaAt(160, 120) > 200 && alphaAt(5, 5) < 50, `${Quality[quality]}: disc opaque (${alphaAt(160, 120)}), corner transparent (${alphaAt(5, 5)})`);
      }
      await assert.rejects(engine.process(image, create(ImageOptionsSchema, { quality: 9 as Quality }), { highPriority: false }), (error: { reason?: string }) => error.reason === "invalid_option");
    } finally {
      await engine.close();
    }
  });
});
