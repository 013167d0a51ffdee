import assert from "node:assert/strict";
import { test } from "node:test";
import { OutputFormat, OutputSize } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { backgroundColourOf, removeBgRequestOf, type RemoveBgFields } from "./removebg-params.ts";

const withFile = (fields: Record<string, string> = {}, files: RemoveBgFields["files"] = new Set(["image_file"])) => removeBgRequestOf({ fields, files });

function accepted(fields: Record<string, string>, files?: RemoveBgFields["files"]) {
  const outcome = withFile(fields, files);
  assert.ok(outcome.ok, `refused: ${JSON.stringify(outcome.ok ? undefined : outcome.error)}`);
  return outcome.request;
}

function refusedWith(fields: Record<string, string>, files?: RemoveBgFields["files"]) {
  const outcome = withFile(fields, files);
  assert.ok(!outcome.ok, `accepted ${JSON.stringify(fields)}`);
  return outcome.error;
}

test("defaults are remove.bg's: size preview, format auto (png without a background), rgba, no crop", () => {
  const { source, options } = accepted({});
  assert.equal(source, "image_file");
  assert.deepEqual([options.size, options.format, options.backgroundColor, options.cropToSubject, options.subjectScalePercent, options.subjectPosition], [OutputSize.PREVIEW, OutputFormat.PNG, "", false, 0, ""]);
});

test("every documented size maps to ours: medium and hd are 1.5 and 4 MP caps, unknown sizes are refused with invalid_size", () => {
  for (const size of ["preview", "small", "regular"]) assert.deepEqual(pick(accepted({ size }).options), [OutputSize.PREVIEW, 0], size);
  for (const size of ["full", "4k", "auto", "AUTO"]) assert.deepEqual(pick(accepted({ size }).options), [OutputSize.FULL, 0], size);
  assert.deepEqual(pick(accepted({ size: "medium" }).options), [OutputSize.FULL, 1_500_000]);
  assert.deepEqual(pick(accepted({ size: "HD" }).options), [OutputSize.FULL, 4_000_000]);
  for (const size of ["huge", "constructor"]) {
    const error = refusedWith({ size });
    assert.deepEqual([error.code, error.title], ["invalid_size", "Invalid value for parameter 'size'"], size);
    assert.match(error.detail, new RegExp(`size "${size}" is not one of preview, small, regular, medium, hd, full, 4k, auto`));
  }
});

const pick = (options: { size: OutputSize; outputPixelsMax: number }) => [options.size, options.outputPixelsMax];

test("format: png, jpg, webp; auto is jpg behind an opaque background; zip renders a PNG to split", () => {
  assert.equal(accepted({ format: "png" }).options.format, OutputFormat.PNG);
  assert.equal(accepted({ format: "jpg" }).options.format, OutputFormat.JPEG);
  assert.equal(accepted({ format: "webp" }).options.format, OutputFormat.WEBP);
  assert.equal(accepted({ bg_color: "fff" }).options.format, OutputFormat.JPEG);
  assert.equal(accepted({}, new Set(["image_file", "bg_image_file"])).options.format, OutputFormat.JPEG);
  for (const fields of [{ format: "zip" }, { format: "ZIP", bg_color: "fff" }, { format: "zip", channels: "rgba" }] as Record<string, string>[]) {
    const request = accepted(fields);
    assert.deepEqual([request.zip, request.options.format], [true, OutputFormat.PNG], JSON.stringify(fields));
  }
  assert.equal(accepted({ format: "png" }).zip, false);
  assert.equal(refusedWith({ format: "gif" }).code, "invalid_format");
  const alphaZip = refusedWith({ format: "zip", channels: "alpha" });
  assert.equal(alphaZip.code, "invalid_channels");
  assert.match(alphaZip.detail, /alpha\.png/);
});

test("channels=alpha asks for the matte (a grayscale PNG); with jpg or webp it is refused, never answered in another format", () => {
  assert.equal(accepted({ channels: "alpha" }).options.format, OutputFormat.MASK);
  assert.equal(accepted({ channels: "alpha", format: "png" }).options.format, OutputFormat.MASK);
  assert.equal(accepted({ channels: "rgba", format: "webp" }).options.format, OutputFormat.WEBP);
  assert.equal(refusedWith({ channels: "alpha", format: "jpg" }).code, "invalid_channels");
  assert.equal(refusedWith({ channels: "rgb" }).code, "invalid_channels");
});

test("bg_color: hex with or without #, 3/4/6/8 digits, colour names; translucent ones refused", () => {
  assert.equal(backgroundColourOf("81d4fa"), "#81d4fa");
  assert.equal(backgroundColourOf("#FFF"), "#ffffff");
  assert.equal(backgroundColourOf("fffF"), "#ffffff");
  assert.equal(backgroundColourOf("#81d4faff"), "#81d4fa");
  assert.equal(backgroundColourOf("green"), "#008000");
  assert.equal(backgroundColourOf("RebeccaPurple"), "#663399");
  for (const colour of ["81d4fa77", "fff8", "notacolour", "12345", "constructor"]) {
    assert.equal(refusedWith({ bg_color: colour }).code, "invalid_bg_color", colour);
  }
  assert.equal(accepted({ bg_color: "green" }).options.backgroundColor, "#008000");
});

test("one image source and one background source, as remove.bg requires", () => {
  assert.deepEqual(refusedWith({}, new Set()), { code: "missing_source", title: "No image given", detail: "Please provide the source image in the image_url, image_file or image_file_b64 parameter." });
  assert.equal(refusedWith({ image_file_b64: "aGk=" }).code, "multiple_sources");
  assert.equal(accepted({ image_file_b64: "aGk=" }, new Set()).source, "image_file_b64");
  assert.equal(accepted({ image_url: "https://example.com/a.jpg" }, new Set()).source, "image_url");
  assert.equal(refusedWith({ bg_color: "fff" }, new Set(["image_file", "bg_image_file"])).code, "multiple_bg_sources");
  assert.equal(refusedWith({ bg_color: "fff", bg_image_url: "https://example.com/b.jpg" }).code, "multiple_bg_sources");
  assert.equal(accepted({ bg_image_url: "https://example.com/b.jpg" }).backgroundSource, "bg_image_url");
});

test("crop and crop_margin: one whole percent up to 50% on every side; pixel and uneven margins refused", () => {
  const cropped = accepted({ crop: "true", crop_margin: "10%" }).options;
  assert.deepEqual([cropped.cropToSubject, cropped.cropMarginPercent], [true, 10]);
  assert.equal(accepted({ crop: "true", crop_margin: "5% 5%" }).options.cropMarginPercent, 5);
  assert.equal(accepted({ crop: "true", crop_margin: "0" }).options.cropMarginPercent, 0);
  assert.equal(accepted({ crop: "true", crop_margin: "0px 0px 0px 0px" }).options.cropMarginPercent, 0);
  // Documented as in effect only with crop=true.
  assert.equal(accepted({ crop_margin: "20%" }).options.cropMarginPercent, 0);
  for (const margin of ["30px", "10% 20%", "51%", "10.5%", "1% 2% 3%", "wide"]) {
    assert.equal(refusedWith({ crop: "true", crop_margin: margin }).code, "invalid_crop_margin", margin);
  }
  assert.equal(refusedWith({ crop: "maybe" }).code, "invalid_crop");
});

test("scale and position map to subject_scale_percent and subject_position", () => {
  assert.deepEqual([accepted({ scale: "50%" }).options.subjectScalePercent, accepted({ scale: "50%" }).options.subjectPosition], [50, ""]);
  assert.equal(accepted({ scale: "original" }).options.subjectScalePercent, 0);
  assert.equal(accepted({ position: "center" }).options.subjectPosition, "center");
  assert.equal(accepted({ position: "20%" }).options.subjectPosition, "20% 20%");
  assert.equal(accepted({ position: "0% 100%" }).options.subjectPosition, "0% 100%");
  assert.equal(accepted({ position: "original" }).options.subjectPosition, "");
  for (const scale of ["5%", "101%", "50", "half"]) assert.equal(refusedWith({ scale }).code, "invalid_scale", scale);
  for (const position of ["top-left", "101%", "1% 2% 3%"]) assert.equal(refusedWith({ position }).code, "invalid_position", position);
  assert.equal(refusedWith({ scale: "50%", position: "original" }).code, "invalid_position");
});

test("roi: the whole image is accepted; any other region is refused with remove.bg's roi codes", () => {
  accepted({ roi: "0% 0% 100% 100%" });
  accepted({ roi: "0px 0px 100% 100%" });
  assert.equal(refusedWith({ roi: "10% 10% 90% 90%" }).code, "invalid_roi");
  assert.equal(refusedWith({ roi: "0 0 100" }).code, "invalid_roi");
  assert.equal(refusedWith({ roi: "0% 0% 120% 100%" }).code, "roi_exceeds_bounds");
  assert.equal(refusedWith({ roi: "50% 0% 50% 100%" }).code, "roi_region_empty");
});

test("type, type_level, add_shadow, semitransparency and shadow_method are checked, then ignored as documented", () => {
  const { options } = accepted({ type: "person", type_level: "2", add_shadow: "true", semitransparency: "false", shadow_method: "legacy" });
  assert.equal(options.format, OutputFormat.PNG);
  assert.equal(refusedWith({ type: "spaceship" }).code, "invalid_type");
  assert.equal(refusedWith({ type_level: "3" }).code, "invalid_type_level");
  assert.equal(refusedWith({ semitransparency: "sometimes" }).code, "invalid_semitransparency");
  assert.equal(refusedWith({ add_shadow: "yes please" }).code, "invalid_add_shadow");
});

test("size picks the quality: preview sizes fast, larger ones balanced; quality (this server's own) overrides, a bad one refused by name", () => {
  for (const size of ["preview", "small", "regular"]) assert.equal(accepted({ size }).options.quality, Quality.FAST, size);
  for (const size of ["medium", "hd", "full", "4k", "auto"]) assert.equal(accepted({ size }).options.quality, Quality.BALANCED, size);
  assert.equal(accepted({}).options.quality, Quality.FAST, "remove.bg's default size is preview");
  assert.equal(accepted({ size: "full", quality: "best" }).options.quality, Quality.BEST);
  assert.equal(accepted({ size: "preview", quality: "Balanced" }).options.quality, Quality.BALANCED);
  const error = refusedWith({ quality: "ultra" });
  assert.equal(error.code, "invalid_quality");
  assert.match(JSON.stringify(error), /use one of fast, balanced, best/);
});
