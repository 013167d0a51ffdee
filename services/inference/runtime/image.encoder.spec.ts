import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import sharp from "sharp";
import { ImageOptionsSchema, OutputFormat, OutputSize } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { InferenceError } from "../domain/inference.errors.ts";
import { layoutSubject } from "../domain/subject.layout.ts";
import { renderOutput } from "./image.encoder.ts";

// A 200×100 cut-out: a green 40×40 subject at (120, 30), everything else transparent.
const width = 200;
const height = 100;
const subject = new Uint8Array(width * height * 4);
const alpha = new Uint8Array(width * height);
for (let y = 0; y < height; y++) {
  for (let x = 0; x < width; x++) {
    const pixel = y * width + x;
    subject.set([20, 200, 40], pixel * 4);
    if (x >= 120 && x < 160 && y >= 30 && y < 70) {
      subject[pixel * 4 + 3] = 255;
      alpha[pixel] = 255;
    }
  }
}
const limits = { bytesMax: 25 * 1024 * 1024, pixelsMax: 1e8 };

async function render(fields: MessageInitShape<typeof ImageOptionsSchema>, exif?: Uint8Array) {
  const options = create(ImageOptionsSchema, fields);
  const layout = layoutSubject(alpha, width, height, options);
  const result = await renderOutput({
    subject,
    width,
    height,
    layout,
    options,
    previewPixelsMax: 2000,
    longestSideMax: 4096,
    hadIccProfile: true,
    exif,
    limits,
  });
  const metadata = await sharp(result.image).metadata();
  const decoder = sharp(result.image);
  // sharp expands a one-channel file to RGB when decoding; the file itself is checked via metadata.
  const raw = await (metadata.channels === 1 ? decoder.extractChannel(0) : decoder).raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => [...raw.data.subarray((y * raw.info.width + x) * raw.info.channels, (y * raw.info.width + x + 1) * raw.info.channels)];
  return { result, metadata, at };
}

describe("renderOutput", () => {
  it("PNG: transparent, input size, sRGB ICC attached, no EXIF by default", async () => {
    const { result, metadata, at } = await render({ format: OutputFormat.PNG }, await exifBlock());
    assert.equal(result.contentType, "image/png");
    assert.deepEqual([result.width, result.height, metadata.width, metadata.height], [200, 100, 200, 100]);
    assert.equal(metadata.channels, 4);
    assert.deepEqual(at(5, 5)[3], 0);
    assert.deepEqual(at(130, 40), [20, 200, 40, 255]);
    assert.ok(metadata.icc !== undefined, "ICC profile kept");
    assert.equal(metadata.exif, undefined, "EXIF stripped by default");
  });

  it("JPEG: white background by default, any hex colour on request", async () => {
    const white = await render({ format: OutputFormat.JPEG });
    assert.equal(white.result.contentType, "image/jpeg");
    assert.equal(white.metadata.channels, 3);
    assert.ok(white.at(5, 5).every((value) => value > 245));
    const red = await render({ format: OutputFormat.JPEG, backgroundColor: "#ff0000" });
    const [r, g, b] = red.at(5, 5);
    assert.ok(r! > 240 && g! < 15 && b! < 15, `expected red, got ${red.at(5, 5).join(",")}`);
  });

  it("WebP: transparent, or solid with a colour", async () => {
    const transparent = await render({ format: OutputFormat.WEBP });
    assert.equal(transparent.result.contentType, "image/webp");
    assert.equal(transparent.metadata.hasAlpha, true);
    assert.ok(transparent.at(5, 5)[3]! < 5);
    const solid = await render({ format: OutputFormat.WEBP, backgroundColor: "#0000ff" });
    assert.equal(solid.metadata.hasAlpha, false);
  });

  it("mask only: one grayscale channel", async () => {
    const { metadata, at } = await render({ format: OutputFormat.MASK });
    assert.equal(metadata.channels, 1);
    assert.deepEqual(at(130, 40), [255]);
    assert.deepEqual(at(5, 5), [0]);
  });

  it("crop to subject with margin, and a subject-aware aspect-ratio crop", async () => {
    const tight = await render({ cropToSubject: true });
    assert.deepEqual([tight.result.width, tight.result.height], [40, 40]);
    const margin = await render({ cropToSubject: true, cropMarginPercent: 25 });
    assert.deepEqual([margin.result.width, margin.result.height], [60, 60]);
    const square = await render({ aspectRatio: "1:1" });
    assert.deepEqual([square.result.width, square.result.height], [100, 100]);
    // The 100×100 window centres on the subject (x 120–160), so it keeps all of it.
    assert.deepEqual(square.at(40, 40), [20, 200, 40, 255]);
    const wide = await render({ cropToSubject: true, aspectRatio: "16:9" });
    assert.ok(Math.abs(wide.result.width / wide.result.height - 16 / 9) < 0.05);
  });

  it("scales and positions the subject", async () => {
    const { result, at } = await render({ subjectScalePercent: 50, subjectPosition: "left" });
    assert.deepEqual([result.width, result.height], [200, 100]);
    // 50 % of the 100 px height: a 50×50 subject at the left edge, vertically centred.
    assert.equal(at(2, 50)[3], 255);
    assert.equal(at(60, 50)[3], 0);
    assert.equal(at(2, 10)[3], 0);
  });

  it("preview stays under the preview pixel budget", async () => {
    const { result } = await render({ size: OutputSize.PREVIEW });
    assert.ok(result.width * result.height <= 2000, `${result.width}×${result.height}`);
    assert.ok(Math.abs(result.width / result.height - 2) < 0.1);
  });

  it("output_pixels_max caps the output's pixels, aspect kept, subject scaled with it; the smaller of it and a preview's budget wins", async () => {
    const { result, metadata, at } = await render({ size: OutputSize.FULL, outputPixelsMax: 10_000 });
    // 200×100 scaled by √(10000/20000): 141×70 (floored, never over the cap).
    assert.deepEqual([result.width, result.height, metadata.width, metadata.height], [141, 70, 141, 70]);
    // The 40×40 subject at (120, 30) scales with it, to about 28×28 at (85, 21).
    const box = result.foreground!;
    for (const [got, want] of [[box.left, 85], [box.top, 21], [box.width, 28], [box.height, 28]] as const) assert.ok(Math.abs(got - want) <= 1, JSON.stringify(box));
    assert.deepEqual(at(95, 35), [20, 200, 40, 255]);
    assert.equal(at(5, 5)[3], 0);
    const preview = await render({ size: OutputSize.PREVIEW, outputPixelsMax: 10_000 });
    assert.ok(preview.result.width * preview.result.height <= 2000, `${preview.result.width}×${preview.result.height}`);
    const tighter = await render({ size: OutputSize.PREVIEW, outputPixelsMax: 1_200 });
    assert.ok(tighter.result.width * tighter.result.height <= 1_200 && tighter.result.width * tighter.result.height > 1_100, `${tighter.result.width}×${tighter.result.height}`);
    const roomy = await render({ size: OutputSize.FULL, outputPixelsMax: 1_000_000 });
    assert.deepEqual([roomy.result.width, roomy.result.height], [200, 100], "a cap above the input's size never enlarges");
  });

  it("keeps EXIF on request, orientation reset to upright", async () => {
    for (const format of [OutputFormat.JPEG, OutputFormat.PNG, OutputFormat.WEBP]) {
      const { metadata } = await render({ format, keepExif: true }, await exifBlock());
      assert.ok(metadata.exif !== undefined, `EXIF kept in ${OutputFormat[format]}`);
      assert.match(metadata.exif.toString("latin1"), /CutlineTestCamera/);
      assert.equal(metadata.orientation ?? 1, 1);
    }
  });

  it("composites a background image behind the subject", async () => {
    const background = await sharp({ create: { width: 50, height: 50, channels: 3, background: "#ff00ff" } }).png().toBuffer();
    const { metadata, at } = await render({ format: OutputFormat.PNG, backgroundImage: background });
    assert.deepEqual([metadata.width, metadata.height], [200, 100]);
    assert.deepEqual(at(5, 5), [255, 0, 255, 255], "an opaque background leaves nothing transparent");
    assert.deepEqual(at(130, 40), [20, 200, 40, 255]);
  });

  it("names a bad option", async () => {
    await assert.rejects(render({ backgroundColor: "blue-ish" }), (error: unknown) => {
      assert.equal((error as InferenceError).reason, "invalid_option");
      assert.match((error as Error).message, /background_color/);
      return true;
    });
    await assert.rejects(render({ aspectRatio: "wide" }), /aspect_ratio/);
  });
});

/** An EXIF block with a camera model and orientation 6, as a phone writes it. */
async function exifBlock(): Promise<Uint8Array> {
  const jpeg = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#000" } })
    .withExif({ IFD0: { Model: "CutlineTestCamera" } })
    .withMetadata({ orientation: 6 })
    .jpeg()
    .toBuffer();
  return (await sharp(jpeg).metadata()).exif!;
}
