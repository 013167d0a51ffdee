import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { test } from "node:test";
import { reasonOf } from "../../common/errors.ts";
import { ImageOperation, ImageOptionsSchema, OutputFormat, OutputSize } from "../../common/gen/cutline/inference/v1/image_options_pb.ts";
import { Quality } from "../../common/gen/cutline/inference/v1/quality_pb.ts";
import { requestFingerprint } from "../image-jobs.ts";
import { asyncRequested, imageOptionsFrom, optionSource } from "./matting.routes.ts";

const fromQuery = (query: string, form?: FormData) => optionSource(form, new URLSearchParams(query));

test("the seed's fields work: output_format and bg_color=transparent; form fields win over the query", () => {
  const options = imageOptionsFrom(fromQuery("output_format=webp&bg_color=transparent&size=preview&crop=true"));
  assert.deepEqual([options.format, options.backgroundColor, options.size, options.cropToSubject], [OutputFormat.WEBP, "", OutputSize.PREVIEW, true]);
  const form = new FormData();
  form.append("format", "jpg");
  form.append("bg_color", "fff");
  const fromForm = imageOptionsFrom(fromQuery("format=png&bg_color=000000", form));
  assert.deepEqual([fromForm.format, fromForm.backgroundColor], [OutputFormat.JPEG, "#fff"]);
  assert.equal(asyncRequested(fromQuery("async=true")), true);
  assert.equal(asyncRequested(fromQuery("")), false);
});

test("smart crop names its operation and defaults to JPEG; matting leaves the operation unspecified", () => {
  const crop = imageOptionsFrom(fromQuery("aspect_ratio=16:9&crop_margin=10%"), ImageOperation.SMART_CROP);
  assert.deepEqual([crop.operation, crop.format, crop.aspectRatio, crop.cropMarginPercent], [ImageOperation.SMART_CROP, OutputFormat.JPEG, "16:9", 10]);
  assert.equal(imageOptionsFrom(fromQuery("format=png"), ImageOperation.SMART_CROP).format, OutputFormat.PNG);
  const matting = imageOptionsFrom(fromQuery("crop=true&crop_margin=5"));
  assert.deepEqual([matting.operation, matting.format, matting.cropMarginPercent], [ImageOperation.UNSPECIFIED, OutputFormat.PNG, 5]);
});

test("a bad option is refused by name, with what is accepted", () => {
  for (const [query, message] of [
    ["output_format=gif", /output_format must be one of png, webp, jpg, jpeg, mask; got "gif"/],
    ["bg_color=red", /bg_color "red" is not a hex colour/],
    ["aspect_ratio=wide", /aspect_ratio "wide" is not a ratio/],
    ["crop=perhaps", /crop must be one of/],
    ["aspect_ratio=0:1", /aspect_ratio "0:1" is not a ratio like "16:9" or "1:1" between 1:100 and 100:1/],
    ["crop_margin=30px", /crop_margin "30px" is not a percent of the subject's size from 0 to 1000/],
    ["crop_margin=1001%", /crop_margin "1001%" is not a percent/],
  ] as const) {
    assert.throws(() => imageOptionsFrom(fromQuery(query)), (error: unknown) => error instanceof ConnectError && reasonOf(error) === "invalid_option" && message.test(error.rawMessage));
  }
});

test("a request's fingerprint changes with its image, its background and its options, and only with them", () => {
  const image = new Uint8Array([1, 2, 3]);
  const png = create(ImageOptionsSchema, { format: OutputFormat.PNG });
  const base = requestFingerprint(image, png);
  assert.match(base, /^[0-9a-f]{64}$/);
  assert.equal(requestFingerprint(new Uint8Array([1, 2, 3]), create(ImageOptionsSchema, { format: OutputFormat.PNG })), base);
  assert.notEqual(requestFingerprint(new Uint8Array([1, 2, 4]), png), base);
  assert.notEqual(requestFingerprint(image, create(ImageOptionsSchema, { format: OutputFormat.WEBP })), base);
  assert.notEqual(requestFingerprint(image, create(ImageOptionsSchema, { format: OutputFormat.PNG, backgroundImage: new Uint8Array([9]) })), base);
  // Lengths are hashed too: moving a byte from the image into the background is another request.
  assert.notEqual(
    requestFingerprint(new Uint8Array([1, 2]), create(ImageOptionsSchema, { backgroundImage: new Uint8Array([3]) })),
    requestFingerprint(new Uint8Array([1]), create(ImageOptionsSchema, { backgroundImage: new Uint8Array([2, 3]) })),
  );
});

test("quality=fast|balanced|best from the form or the query; absent is unspecified (balanced); anything else names the allowed values", () => {
  assert.equal(imageOptionsFrom(fromQuery("quality=fast")).quality, Quality.FAST);
  assert.equal(imageOptionsFrom(fromQuery("quality=BEST"), ImageOperation.SMART_CROP).quality, Quality.BEST);
  const form = new FormData();
  form.append("quality", "balanced");
  assert.equal(imageOptionsFrom(fromQuery("quality=fast", form)).quality, Quality.BALANCED, "the form field wins");
  assert.equal(imageOptionsFrom(fromQuery("")).quality, Quality.UNSPECIFIED, "absent keeps the request fingerprint of before");
  assert.throws(
    () => imageOptionsFrom(fromQuery("quality=max")),
    (error: unknown) => error instanceof ConnectError && reasonOf(error) === "invalid_option" && error.rawMessage === 'quality "max" is unknown; use one of fast, balanced, best',
  );
});
