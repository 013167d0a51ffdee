import { create } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { test } from "node:test";
import { ImageOperation, ImageOptionsSchema, OutputFormat } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { imageOptionsProblem } from "./image-options.ts";

const smartCrop = (fields: Parameters<typeof create<typeof ImageOptionsSchema>>[1] = {}) => create(ImageOptionsSchema, { operation: ImageOperation.SMART_CROP, ...fields });

test("options inference accepts pass; each refusal names the option and its bounds", () => {
  assert.equal(imageOptionsProblem(create(ImageOptionsSchema)), undefined);
  assert.equal(imageOptionsProblem(smartCrop({ aspectRatio: "16:9", cropMarginPercent: 1000, format: OutputFormat.WEBP })), undefined);
  for (const [options, message] of [
    [smartCrop({ aspectRatio: "0:1" }), /^aspect_ratio "0:1" is not a ratio like "16:9" or "1:1" between 1:100 and 100:1$/],
    [create(ImageOptionsSchema, { aspectRatio: "101:1" }), /^aspect_ratio "101:1"/],
    [smartCrop({ cropMarginPercent: 1001 }), /^crop_margin_percent 1001 is not a whole number of percent from 0 to 1000$/],
    [smartCrop({ format: OutputFormat.MASK }), /^output_format mask is not available for smart crop/],
    [smartCrop({ backgroundImage: new Uint8Array([1]) }), /^bg_image_file is not available for smart crop/],
    [smartCrop({ subjectPosition: "top" }), /not available for smart crop/],
    [create(ImageOptionsSchema, { operation: 7 as ImageOperation }), /^operation 7 is not one of/],
    [create(ImageOptionsSchema, { outputPixelsMax: 1023 }), /^output_pixels_max 1023 is not 0 \(no cap\) or a whole number of pixels from 1024 to 100000000 \(100 MP\)$/],
    [create(ImageOptionsSchema, { outputPixelsMax: 100_000_001 }), /^output_pixels_max 100000001 is not 0/],
  ] as const) {
    assert.match(imageOptionsProblem(options) ?? "(accepted)", message);
  }
  assert.equal(imageOptionsProblem(create(ImageOptionsSchema, { format: OutputFormat.MASK })), undefined, "a mask is a cut-out's option");
  for (const outputPixelsMax of [1024, 1_500_000, 100_000_000]) assert.equal(imageOptionsProblem(create(ImageOptionsSchema, { outputPixelsMax })), undefined, String(outputPixelsMax));
});

test("a quality the enum does not know is refused naming the allowed values", () => {
  assert.equal(imageOptionsProblem(create(ImageOptionsSchema, { quality: 3 })), undefined);
  assert.equal(imageOptionsProblem(create(ImageOptionsSchema, { quality: 8 as Quality })), "quality 8 is unknown; use one of fast, balanced, best");
});
