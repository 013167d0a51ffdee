// Smart Crop on a real single node (the real model): POST /v1/smart-crop and ImageService.SmartCrop
// return the ORIGINAL pixels (background kept, no alpha) cropped around the subject to the asked
// ratio; the call captures exactly what POST /v1/quote said (1.3 credits); a bad option is
// refused before any hold; async=true and JobService.Submit run the same operation as a job.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import sharp from "sharp";
import { ImageService } from "../services/common/gen/cutline/gateway/v1/image_service_pb.ts";
import { JobService } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { ImageOperation, OutputFormat } from "../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { loadInferenceConfig } from "../services/inference/inference.config.ts";
import { decodeImage, imageLimitsOf } from "../services/inference/runtime/image.decoder.ts";
import { publicApiNode, TRIAL_MILLICREDITS, type JobJson } from "./public-api.testing.ts";

const SMART_CROP_MILLICREDITS = 1300n;
const HEIC = readFileSync(join(import.meta.dirname, "..", "services", "inference", "testdata", "orange-blue-corner.heic"));

type Raw = { data: Buffer; width: number; height: number };

/** Where `window` sits in `image` pixel for pixel (both RGB), or undefined. */
function findWindow(image: Raw, window: Raw): { left: number; top: number } | undefined {
  const rowBytes = window.width * 3;
  for (let top = 0; top + window.height <= image.height; top++) {
    for (let left = 0; left + window.width <= image.width; left++) {
      let same = true;
      for (let row = 0; same && row < window.height; row++) {
        const at = ((top + row) * image.width + left) * 3;
        same = image.data.subarray(at, at + rowBytes).equals(window.data.subarray(row * rowBytes, (row + 1) * rowBytes));
      }
      if (same) return { left, top };
    }
  }
  return undefined;
}

/** The upright RGB pixels inference works on, decoded as it decodes them. */
async function uprightRgb(bytes: Uint8Array): Promise<Raw> {
  const decoded = await decodeImage(bytes, imageLimitsOf(loadInferenceConfig({})), 4096);
  const data = await sharp(decoded.rgba, { raw: { width: decoded.width, height: decoded.height, channels: 4 } }).removeAlpha().raw().toBuffer();
  return { data, width: decoded.width, height: decoded.height };
}

async function rgbOf(image: Uint8Array): Promise<Raw & { channels: number }> {
  const { data, info } = await sharp(image).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

describe("Smart Crop on a single node", () => {
  const api = publicApiNode("smart-crop");
  const { account, balance, errorOf, pollUntilDone } = api;
  const form = (image: Uint8Array, name: string, fields: Record<string, string>) => {
    const body = new FormData();
    body.append("image_file", new Blob([image]), name);
    for (const [field, value] of Object.entries(fields)) body.append(field, value);
    return body;
  };

  it("crops the HEIC from testdata to 1:1: the original pixels, opaque PNG, charged the quoted 1.3 credits", async () => {
    const { accountId, key } = await account();
    const quote = await fetch(`${api.node.url}/v1/quote`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json" },
      body: JSON.stringify({ operation: "smart_crop", width: 64, height: 48 }),
    });
    const { credits } = (await quote.json()) as { credits: number };
    assert.equal(credits, 1.3);

    const response = await fetch(`${api.node.url}/v1/smart-crop`, { method: "POST", headers: { "x-api-key": key }, body: form(HEIC, "corner.heic", { aspect_ratio: "1:1", format: "png" }) });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/png");
    assert.equal(Number(response.headers.get("x-credits-charged")), credits, "captured = quoted");
    const crop = await rgbOf(new Uint8Array(await response.arrayBuffer()));
    assert.equal(crop.channels, 3, "no alpha channel: the background is kept, not cut out");
    assert.equal(crop.width, crop.height, `1:1, got ${crop.width}x${crop.height}`);
    assert.ok(crop.width <= 48 && crop.width > 0);
    assert.ok(findWindow(await uprightRgb(HEIC), crop), "every pixel is the original's, at one place in it");
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - SMART_CROP_MILLICREDITS, held: 0n }, "the balance fell by the quote");
    assert.equal(Number(response.headers.get("x-credits-remaining")), Number(TRIAL_MILLICREDITS - SMART_CROP_MILLICREDITS) / 1000);
  });

  it("centres the crop on the subject at the asked ratio, JPEG by default", async () => {
    const { key } = await account();
    // api.photo: a 64x64 PNG, an orange disc (r 18) at (32, 34) on a pale blue background.
    const response = await fetch(`${api.node.url}/v1/smart-crop?aspect_ratio=16:9&crop_margin=10%25`, { method: "POST", headers: { "x-api-key": key }, body: form(api.photo, "disc.png", {}) });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/jpeg");
    const crop = await rgbOf(new Uint8Array(await response.arrayBuffer()));
    assert.equal(crop.channels, 3);
    assert.ok(Math.abs(crop.width / crop.height - 16 / 9) <= 1 / crop.height, `16:9 to the pixel, got ${crop.width}x${crop.height}`);
    assert.ok(crop.height >= 36 && crop.height <= 44, `the disc (36 px) plus about 10 % each side, got ${crop.height} px high`);
    const at = (x: number, y: number) => [...crop.data.subarray((y * crop.width + x) * 3, (y * crop.width + x) * 3 + 3)];
    const [red, green, blue] = at(Math.floor(crop.width / 2), Math.floor(crop.height / 2));
    assert.ok(red! > 150 && green! < 120 && blue! < 80, `the disc at the centre, got ${[red, green, blue]}`);
    const [cornerRed, , cornerBlue] = at(1, 1);
    assert.ok(cornerBlue! > 200 && cornerRed! > 180, `the original background kept at the corner, got ${at(1, 1)}`);
  });

  it("refuses a bad aspect_ratio, crop_margin or a mask with 400 naming the option, before any hold", async () => {
    const { accountId, key } = await account();
    for (const [query, message] of [
      ["aspect_ratio=0:1", /^aspect_ratio "0:1" is not a ratio like "16:9" or "1:1" between 1:100 and 100:1$/],
      ["aspect_ratio=wide", /^aspect_ratio "wide" is not a ratio/],
      ["crop_margin=20px", /^crop_margin "20px" is not a percent of the subject's size from 0 to 1000/],
      ["format=mask", /^output_format mask is not available for smart crop/],
    ] as const) {
      const response = await fetch(`${api.node.url}/v1/smart-crop?${query}`, { method: "POST", headers: { "x-api-key": key }, body: form(api.photo, "disc.png", {}) });
      assert.equal(response.status, 400, query);
      const error = await errorOf(response);
      assert.equal(error.code, "invalid_option", query);
      assert.match(error.title, message);
    }
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS, held: 0n }, "nothing held, nothing charged");
  });

  it("async=true answers 202 with the job; it succeeds charging 1.3 and its result is the crop", async () => {
    const { key } = await account();
    const submitted = await fetch(`${api.node.url}/v1/smart-crop?async=true`, { method: "POST", headers: { "x-api-key": key }, body: form(api.photo, "disc.png", { aspect_ratio: "1:1" }) });
    assert.equal(submitted.status, 202);
    const done = await pollUntilDone(key, ((await submitted.json()) as JobJson).id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.equal(done.credits_charged, 1.3);
    const result = await fetch(done.result_url!);
    assert.equal(result.headers.get("content-type"), "image/jpeg");
    const crop = await rgbOf(new Uint8Array(await result.arrayBuffer()));
    assert.equal(crop.width, crop.height);
  });

  it("ImageService.SmartCrop and JobService.Submit (options.operation) run the same operation, charged 1300 millicredits", async () => {
    const { key } = await account();
    const transport = createConnectTransport({ baseUrl: api.node.url, httpVersion: "1.1" });
    const headers = { "x-api-key": key };
    const sync = await createClient(ImageService, transport).smartCrop({ image: api.photo, aspectRatio: "4:3", format: OutputFormat.PNG }, { headers });
    assert.equal(sync.contentType, "image/png");
    assert.equal(sync.creditsChargedMillicredits, SMART_CROP_MILLICREDITS);
    const crop = await rgbOf(sync.image);
    assert.equal(crop.channels, 3);
    assert.ok(Math.abs(crop.width / crop.height - 4 / 3) <= 1 / crop.height, `${crop.width}x${crop.height}`);

    const jobs = createClient(JobService, transport);
    const { job } = await jobs.submit({ image: api.photo, options: { operation: ImageOperation.SMART_CROP, aspectRatio: "1:1" } }, { headers });
    const done = await pollUntilDone(key, job!.id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.equal(done.credits_charged, 1.3);
  });
});
