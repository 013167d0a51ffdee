import assert from "node:assert/strict";
import { test } from "node:test";
import { OutputFormat, OutputSize } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { editRequestOf, segmentOptionsOf } from "./photoroom-params.ts";

const segment = (fields: Record<string, string>, files: string[] = ["image_file"]) => segmentOptionsOf({ fields, files: new Set(files) });
const edit = (fields: Record<string, string>, files: string[] = [], method: "GET" | "POST" = "GET") => editRequestOf({ fields, files: new Set(files) }, method);

function segmentOptions(fields: Record<string, string>) {
  const outcome = segment(fields);
  assert.ok(outcome.ok, JSON.stringify(outcome));
  return outcome.options;
}

function editOptions(fields: Record<string, string>, files: string[] = []) {
  const outcome = edit({ imageUrl: "https://example.com/image.jpg", ...fields }, files);
  assert.ok(outcome.ok, JSON.stringify(outcome));
  return outcome.request.options;
}

function editRefusal(fields: Record<string, string>, files: string[] = [], method: "GET" | "POST" = "GET") {
  const outcome = edit(fields, files, method);
  assert.ok(!outcome.ok, `accepted ${JSON.stringify(fields)}`);
  return outcome.error;
}

test("/v1/segment: Photoroom's defaults are png, rgba, full size, no crop", () => {
  const options = segmentOptions({});
  assert.deepEqual([options.format, options.size, options.backgroundColor, options.cropToSubject], [OutputFormat.PNG, OutputSize.FULL, "", false]);
});

test("/v1/segment: every documented value maps, despill is checked and without effect", () => {
  assert.equal(segmentOptions({ format: "jpg" }).format, OutputFormat.JPEG);
  assert.equal(segmentOptions({ format: "webp" }).format, OutputFormat.WEBP);
  assert.equal(segmentOptions({ channels: "alpha" }).format, OutputFormat.MASK);
  assert.equal(segmentOptions({ size: "preview" }).size, OutputSize.PREVIEW);
  // Photoroom's medium and hd: at most 1.5 and 4 MP; full and preview carry no extra cap.
  for (const [size, expected] of [["preview", [OutputSize.PREVIEW, 0]], ["medium", [OutputSize.FULL, 1_500_000]], ["hd", [OutputSize.FULL, 4_000_000]], ["full", [OutputSize.FULL, 0]]] as const) {
    const options = segmentOptions({ size });
    assert.deepEqual([options.size, options.outputPixelsMax], expected, size);
  }
  assert.equal(segmentOptions({ crop: "true" }).cropToSubject, true);
  assert.equal(segmentOptions({ bg_color: "#FF00FF" }).backgroundColor, "#ff00ff");
  assert.equal(segmentOptions({ bg_color: "red" }).backgroundColor, "#ff0000");
  assert.deepEqual(segmentOptions({ despill: "true" }), segmentOptions({ despill: "false" }));
});

test("/v1/segment: refusals name the parameter; a missing image is missing_image", () => {
  const missing = segment({}, []);
  assert.ok(!missing.ok);
  assert.deepEqual(missing.error, { parameter: "image_file", message: "image_file: Please provide an image.", reason: "missing_image" });
  for (const [fields, parameter] of [
    [{ size: "4k" }, "size"],
    [{ format: "gif" }, "format"],
    [{ channels: "alpha", format: "jpg" }, "channels"],
    [{ bg_color: "FF000080" }, "bg_color"],
    [{ bg_color: "not-a-colour" }, "bg_color"],
    [{ crop: "yes" }, "crop"],
    [{ despill: "maybe" }, "despill"],
    [{ bg_image_url: "https://example.com/b.png" }, "bg_image_url"],
  ] as const) {
    const outcome = segment(fields);
    assert.ok(!outcome.ok, JSON.stringify(fields));
    assert.equal(outcome.error.parameter, parameter);
    assert.equal(outcome.error.reason, "invalid_option");
    assert.ok(outcome.error.message.startsWith(`${parameter}: `), outcome.error.message);
  }
});

test("/v2/edit: the OpenAPI example (background.color, padding 0.1) maps to a colour and a subject at 80%, centred", () => {
  const options = editOptions({ removeBackground: "true", "background.color": "FFFFFF", padding: "0.1" });
  assert.deepEqual([options.backgroundColor, options.subjectScalePercent, options.subjectPosition, options.format, options.size], ["#ffffff", 80, "50% 50%", OutputFormat.PNG, OutputSize.FULL]);
});

test("/v2/edit: without padding, margin or alignment the subject keeps its place; transparent is no colour", () => {
  const options = editOptions({ "background.color": "transparent", outputSize: "originalImage" });
  assert.deepEqual([options.backgroundColor, options.subjectScalePercent, options.subjectPosition, options.cropToSubject], ["", 0, "", false]);
});

test("/v2/edit: margin and padding combine (padding is a ratio of the output less margins); percents and per-side equal values", () => {
  assert.equal(editOptions({ margin: "10%", padding: "0.25" }).subjectScalePercent, 40);
  assert.equal(editOptions({ paddingTop: "0.05", paddingBottom: "0.05", paddingLeft: "5%", paddingRight: "0.05" }).subjectScalePercent, 90);
  assert.equal(editOptions({ padding: "0.1", paddingTop: "0.1" }).subjectScalePercent, 80);
  assert.equal(editOptions({ padding: "0" }).subjectScalePercent, 100);
});

test("/v2/edit: alignment places the subject; croppedSubject crops; export.format maps", () => {
  assert.equal(editOptions({ padding: "0.1", horizontalAlignment: "left", verticalAlignment: "bottom" }).subjectPosition, "0% 100%");
  assert.deepEqual([editOptions({ verticalAlignment: "top" }).subjectPosition, editOptions({ verticalAlignment: "top" }).subjectScalePercent], ["50% 0%", 0]);
  assert.equal(editOptions({ outputSize: "croppedSubject" }).cropToSubject, true);
  assert.equal(editOptions({ "export.format": "jpeg" }).format, OutputFormat.JPEG);
  assert.equal(editOptions({ "export.format": "jpg" }).format, OutputFormat.JPEG);
  assert.equal(editOptions({ "export.format": "webp" }).format, OutputFormat.WEBP);
  // Photoroom's defaults, given explicitly, are the values this server honours.
  assert.ok(edit({ imageUrl: "u", ignorePaddingAndSnapOnCroppedSides: "false", keepExistingAlphaChannel: "never", referenceBox: "subjectBox", preserveMetadata: "never", scaling: "fit" }).ok);
});

test("/v2/edit: background images come from one field; background.scaling fill only with one", () => {
  const outcome = edit({ "background.scaling": "fill" }, ["imageFile", "background.imageFile"], "POST");
  assert.ok(outcome.ok, JSON.stringify(outcome));
  assert.deepEqual([outcome.request.source, outcome.request.backgroundSource], ["imageFile", "background.imageFile"]);
  const byUrl = edit({ imageUrl: "u", "background.imageUrl": "b" });
  assert.ok(byUrl.ok);
  assert.equal(byUrl.request.backgroundSource, "background.imageUrl");
  assert.equal(editRefusal({ imageUrl: "u", "background.color": "red", "background.imageUrl": "b" }).parameter, "background.color, background.imageUrl");
  assert.equal(editRefusal({ imageUrl: "u", "background.scaling": "fill" }).parameter, "background.scaling");
  assert.equal(editRefusal({ imageUrl: "u", "background.imageUrl": "b", "background.scaling": "fit" }).parameter, "background.scaling");
});

test("/v2/edit: generative options are refused together, naming each", () => {
  const error = editRefusal({ imageUrl: "u", "shadow.mode": "ai.soft", "lighting.mode": "ai.auto", "background.prompt": "a beach", templateId: "x" });
  assert.equal(error.parameter, "shadow.mode, lighting.mode, background.prompt, templateId");
  assert.match(error.message, /generative edits/);
  assert.equal(editRefusal({ imageUrl: "u", "outline.color": "red" }).parameter, "outline.color");
  assert.equal(editRefusal({ imageUrl: "u", "upscale.mode": "ai.fast" }).parameter, "upscale.mode");
  assert.equal(editRefusal({ imageUrl: "u", wibble: "1" }).parameter, "wibble");
});

test("/v2/edit: what is not offered is refused naming the parameter", () => {
  for (const [fields, parameter] of [
    [{ outputSize: "1000x1000" }, "outputSize"],
    [{ outputSize: "huge" }, "outputSize"],
    [{ maxWidth: "200" }, "maxWidth"],
    [{ maxHeight: "200" }, "maxHeight"],
    [{ "export.dpi": "300" }, "export.dpi"],
    [{ "export.format": "gif" }, "export.format"],
    [{ removeBackground: "false" }, "removeBackground"],
    [{ removeBackground: "yes" }, "removeBackground"],
    [{ scaling: "fill" }, "scaling"],
    [{ padding: "100px" }, "padding"],
    [{ margin: "0.5" }, "margin"],
    [{ padding: "0.1", paddingTop: "0.2" }, "paddingTop, paddingBottom, paddingLeft, paddingRight"],
    [{ outputSize: "croppedSubject", padding: "0.1" }, "padding"],
    [{ horizontalAlignment: "middle" }, "horizontalAlignment"],
    [{ "background.color": "FF0000EE" }, "background.color"],
    [{ ignorePaddingAndSnapOnCroppedSides: "true" }, "ignorePaddingAndSnapOnCroppedSides"],
    [{ keepExistingAlphaChannel: "auto" }, "keepExistingAlphaChannel"],
    [{ referenceBox: "originalImage" }, "referenceBox"],
    [{ preserveMetadata: "xmp" }, "preserveMetadata"],
  ] as const) {
    const error = editRefusal({ imageUrl: "u", ...fields });
    assert.equal(error.parameter, parameter, JSON.stringify(fields));
    assert.equal(error.reason, "invalid_option");
  }
});

test("/v2/edit: the image is required (GET names imageUrl, POST imageFile) and only one is taken", () => {
  assert.deepEqual(editRefusal({}), { parameter: "imageUrl", message: "imageUrl: must be provided", reason: "missing_image" });
  assert.deepEqual(editRefusal({}, [], "POST"), { parameter: "imageFile", message: "imageFile: must be provided", reason: "missing_image" });
  assert.equal(editRefusal({ imageUrl: "u" }, ["imageFile"], "POST").parameter, "imageFile, imageUrl");
});

test("/v1/segment's size picks the quality (preview fast, others balanced); quality overrides on both routes; a bad one names the allowed values", () => {
  assert.equal(segmentOptions({ size: "preview" }).quality, Quality.FAST);
  for (const size of ["medium", "hd", "full"]) assert.equal(segmentOptions({ size }).quality, Quality.BALANCED, size);
  assert.equal(segmentOptions({}).quality, Quality.BALANCED, "Photoroom's default size is full");
  assert.equal(segmentOptions({ size: "preview", quality: "best" }).quality, Quality.BEST);
  assert.equal(editOptions({}).quality, Quality.BALANCED);
  assert.equal(editOptions({ quality: "fast" }).quality, Quality.FAST);
  const outcome = segment({ quality: "max" });
  assert.ok(!outcome.ok);
  assert.equal(outcome.error.parameter, "quality");
  assert.equal(outcome.error.message, 'quality: quality "max" is unknown; use one of fast, balanced, best');
  assert.equal(editRefusal({ imageUrl: "https://example.com/image.jpg", quality: "max" }).parameter, "quality");
});
