// Photoroom's API as a drop-in, against a real single node (in-process adapters, the real model):
// requests built from Photoroom's OpenAPI document (tryAGI/Photoroom src/libs/Photoroom/openapi.yaml:
// remove-background-post-params for /v1/segment, the /v2/edit GET query and POST form, its
// example `GET /v2/edit?imageUrl=...&removeBackground=true&background.color=FFFFFF&padding=0.1`,
// and the account routes), checking status, headers and body field by field. imageUrl and
// background.imageUrl are fetched from a real HTTP server on 127.0.0.1
// (CUTLINE_OUTBOUND_ALLOW_LOOPBACK=true).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { greenBackgroundPng, loopbackImageServer, sendBytes } from "./loopback.testing.ts";
import { IMAGE_MILLICREDITS, publicApiNode } from "./public-api.testing.ts";

const api = publicApiNode("photoroom", { CUTLINE_OUTBOUND_ALLOW_LOOPBACK: "true" });

/** A multipart form with Photoroom's fields; `files` are [field, bytes] pairs. */
function form(fields: Record<string, string>, files: [string, Uint8Array][] = []): FormData {
  const body = new FormData();
  for (const [name, bytes] of files) body.append(name, new Blob([bytes], { type: "image/png" }), `${name}.png`);
  for (const [name, value] of Object.entries(fields)) body.append(name, value);
  return body;
}

const segment = (headers: Record<string, string>, body: FormData) => fetch(`${api.node.url}/v1/segment`, { method: "POST", headers, body });
const editPost = (headers: Record<string, string>, body: FormData) => fetch(`${api.node.url}/v2/edit`, { method: "POST", headers, body });
const editGet = (headers: Record<string, string>, query: Record<string, string>) => fetch(`${api.node.url}/v2/edit?${new URLSearchParams(query)}`, { headers });

/** /v1/segment's error body: exactly {detail, status_code, type}. */
async function segmentError(response: Response) {
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = (await response.json()) as { detail: string; status_code: number; type: string };
  assert.deepEqual(Object.keys(body), ["detail", "status_code", "type"]);
  assert.equal(body.status_code, response.status);
  return body;
}

/** The v2 error body: exactly {error:{message}} ({error:{message,detail}} on 402). */
async function editError(response: Response) {
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = (await response.json()) as { error: { message: string; detail?: string } };
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.deepEqual(Object.keys(body.error), response.status === 402 ? ["message", "detail"] : ["message"]);
  return body.error;
}

function assertBillingHeaders(response: Response) {
  assert.equal(response.headers.get("x-credits-charged"), "0.5");
  assert.match(response.headers.get("x-job-id") ?? "", /\S/);
  for (const header of ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]) assert.match(response.headers.get(header) ?? "", /^\d+$/, header);
  assert.equal(response.headers.get("x-uncertainty-score"), null, "no uncertainty score is invented");
}

/** The RGB of pixel (x, y). */
async function pixel(image: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(image).raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * info.channels;
  return [...data.subarray(at, at + info.channels)];
}

/** The box of the pixels far from white (the subject on a white background). */
async function nonWhiteBox(image: Buffer) {
  const { data, info } = await sharp(image).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let [left, top, right, bottom] = [info.width, info.height, -1, -1];
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      const at = (y * info.width + x) * info.channels;
      if (data[at]! > 200 && data[at + 1]! > 200 && data[at + 2]! > 200) continue;
      [left, top, right, bottom] = [Math.min(left, x), Math.min(top, y), Math.max(right, x), Math.max(bottom, y)];
    }
  }
  return { left, top, width: right - left + 1, height: bottom - top + 1 };
}

describe("Photoroom drop-in: /v1/segment, /v1/account, /v2/account, /v2/edit", () => {
  it("POST /v1/segment with image_file answers a transparent PNG at full size with our billing headers, charged once", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const response = await segment({ "x-api-key": key }, form({}, [["image_file", api.photo]]));
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/png");
    const image = Buffer.from(await response.arrayBuffer());
    const metadata = await sharp(image).metadata();
    assert.deepEqual([metadata.format, metadata.channels, metadata.width, metadata.height], ["png", 4, 64, 64]);
    assert.equal((await pixel(image, 0, 0))[3], 0, "the background is transparent");
    assertBillingHeaders(response);
    const after = await api.balance(accountId);
    assert.deepEqual([before.available - after.available, after.held], [IMAGE_MILLICREDITS, 0n]);
  });

  it("POST /v1/segment answers {base64img} to Accept: application/json; format, bg_color, size, crop and despill as documented", async () => {
    const { key } = await api.account();
    const fields = { format: "jpg", bg_color: "#FF00FF", size: "preview", crop: "true", despill: "true" };
    const response = await segment({ "x-api-key": key, accept: "application/json" }, form(fields, [["image_file", api.photo]]));
    assert.equal(response.status, 200, await response.clone().text());
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
    const body = (await response.json()) as { base64img: string };
    assert.deepEqual(Object.keys(body), ["base64img"]);
    const image = Buffer.from(body.base64img, "base64");
    const metadata = await sharp(image).metadata();
    assert.equal(metadata.format, "jpeg");
    assert.ok(metadata.width! < 64 && metadata.height! < 64, `crop=true cuts to the subject: ${metadata.width}x${metadata.height}`);
    assertBillingHeaders(response);
    // channels=alpha: the matte alone, as a grayscale PNG.
    const alpha = await segment({ "x-api-key": key }, form({ channels: "alpha" }, [["image_file", api.photo]]));
    assert.equal(alpha.status, 200, await alpha.clone().text());
    const matte = await sharp(Buffer.from(await alpha.arrayBuffer())).metadata();
    assert.deepEqual([matte.format, matte.channels, matte.width], ["png", 1, 64]);
  });

  it("POST /v1/segment size=medium answers at most 1.5 MP (Photoroom's medium) with the input's aspect ratio", async () => {
    const { key } = await api.account();
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="2000" height="1500"><rect width="2000" height="1500" fill="#d8e4f0"/><circle cx="1000" cy="780" r="480" fill="#c0501a"/></svg>`;
    const photo = new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());
    const response = await segment({ "x-api-key": key }, form({ size: "medium" }, [["image_file", photo]]));
    assert.equal(response.status, 200, await response.clone().text());
    const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    assert.equal(metadata.format, "png");
    assert.ok(metadata.width! * metadata.height! <= 1_500_000 && metadata.width! * metadata.height! > 1_490_000, `${metadata.width}x${metadata.height}`);
    assert.ok(Math.abs(metadata.width! / metadata.height! - 4 / 3) < 0.01, `aspect ${metadata.width}x${metadata.height}`);
  });

  it("POST /v2/edit with the OpenAPI example's fields: white background, subject fitted in 80% and centred", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const fields = { removeBackground: "true", "background.color": "FFFFFF", padding: "0.1", "export.format": "png" };
    const response = await editPost({ "x-api-key": key }, form(fields, [["imageFile", api.photo]]));
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/png");
    assertBillingHeaders(response);
    const image = Buffer.from(await response.arrayBuffer());
    const metadata = await sharp(image).metadata();
    assert.deepEqual([metadata.width, metadata.height], [64, 64], "outputSize auto: the input's size");
    assert.deepEqual((await pixel(image, 0, 0)).slice(0, 3), [255, 255, 255]);
    // padding 0.1: the 36 px disc grows until it fills 80% of 64 px (51 px), centred.
    const box = await nonWhiteBox(image);
    assert.ok(Math.abs(box.width - 51) <= 2 && Math.abs(box.height - 51) <= 2, JSON.stringify(box));
    assert.ok(Math.abs(box.left + box.width / 2 - 32) <= 2 && Math.abs(box.top + box.height / 2 - 32) <= 2, JSON.stringify(box));
    const after = await api.balance(accountId);
    assert.deepEqual([before.available - after.available, after.held], [IMAGE_MILLICREDITS, 0n]);
  });

  it("POST /v2/edit takes background.imageFile, export.format webp and outputSize croppedSubject", async () => {
    const { key } = await api.account();
    const background = new Uint8Array(await sharp({ create: { width: 64, height: 64, channels: 3, background: "#20a040" } }).png().toBuffer());
    const response = await editPost({ "x-api-key": key }, form({ "export.format": "webp", outputSize: "croppedSubject" }, [["imageFile", api.photo], ["background.imageFile", background]]));
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/webp");
    const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    assert.ok(metadata.width! < 64 && metadata.height! < 64, `cropped to ${metadata.width}x${metadata.height}`);
  });

  it("GET /v1/account and GET /v2/account answer exactly Photoroom's keys, from the billing buckets", async () => {
    const { key } = await api.account();
    const v1 = await fetch(`${api.node.url}/v1/account`, { headers: { "x-api-key": key } });
    assert.equal(v1.status, 200);
    assert.match(v1.headers.get("content-type") ?? "", /^application\/json/);
    // The sign-up trial: 10 credits, subscription-like (it is the plan's grant, not bought).
    assert.deepEqual(await v1.json(), { credits: { available: 10, subscription: 10 } });
    const v2 = await fetch(`${api.node.url}/v2/account`, { headers: { "x-api-key": key } });
    assert.equal(v2.status, 200);
    const body = (await v2.json()) as { images: { available: number; subscription: number }; plan: string };
    assert.deepEqual(Object.keys(body), ["images", "plan"]);
    assert.deepEqual(Object.keys(body.images), ["available", "subscription"]);
    // 10 credits at 0.5 an image.
    assert.deepEqual(body.images, { available: 20, subscription: 20 });
    assert.equal(body.plan, "free");
  });

  it("answers a missing or unknown x-api-key with 403 in each route's shape", async () => {
    for (const headers of [{}, { "x-api-key": "not-a-key" }] as Record<string, string>[]) {
      const refused = await segment(headers, form({}, [["image_file", api.photo]]));
      assert.equal(refused.status, 403);
      assert.match((await segmentError(refused)).type, /^(missing|invalid)_api_key$/);
      for (const response of [
        await editPost(headers, form({}, [["imageFile", api.photo]])),
        await editGet(headers, { imageUrl: "http://127.0.0.1:9/x.png" }),
        await fetch(`${api.node.url}/v1/account`, { headers }),
        await fetch(`${api.node.url}/v2/account`, { headers }),
      ]) {
        assert.equal(response.status, 403, response.url);
        assert.match((await editError(response)).message, /key/i);
      }
    }
  });

  it("refuses a bad parameter with 400 in Photoroom's shape naming it, nothing held or charged", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const size = await segment({ "x-api-key": key }, form({ size: "4k" }, [["image_file", api.photo]]));
    assert.equal(size.status, 400);
    const sizeError = await segmentError(size);
    assert.equal(sizeError.type, "invalid_option");
    assert.match(sizeError.detail, /^size: "4k" is not one of preview, medium, hd, full/);
    const missing = await segment({ "x-api-key": key }, form({ format: "png" }));
    assert.deepEqual(await segmentError(missing), { detail: "image_file: Please provide an image.", status_code: 400, type: "missing_image" });
    const generative = await editPost({ "x-api-key": key }, form({ "shadow.mode": "ai.soft", "background.prompt": "a beach" }, [["imageFile", api.photo]]));
    assert.equal(generative.status, 400);
    assert.match((await editError(generative)).message, /^shadow\.mode, background\.prompt: generative edits/);
    const outputSize = await editPost({ "x-api-key": key }, form({ outputSize: "1000x1000" }, [["imageFile", api.photo]]));
    assert.equal(outputSize.status, 400);
    assert.match((await editError(outputSize)).message, /^outputSize: "1000x1000"/);
    const noImage = await editPost({ "x-api-key": key }, form({ padding: "0.1" }));
    assert.deepEqual(await editError(noImage), { message: "imageFile: must be provided" });
    const unreadable = await segment({ "x-api-key": key }, form({}, [["image_file", new TextEncoder().encode("not an image")]]));
    assert.equal(unreadable.status, 400);
    assert.equal((await segmentError(unreadable)).type, "unsupported_format");
    assert.deepEqual(await api.balance(accountId), before);
  });

  it("answers 402 when out of credits, in each route's shape, with nothing charged", async () => {
    const accountId = "photoroom-broke";
    const key = await api.node.provisionAccount(accountId, { grantTrial: false });
    const before = await api.balance(accountId);
    assert.equal(before.available, 0n);
    const v1 = await segment({ "x-api-key": key }, form({}, [["image_file", api.photo]]));
    assert.equal(v1.status, 402);
    assert.equal((await segmentError(v1)).type, "insufficient_credits");
    const v2 = await editPost({ "x-api-key": key }, form({}, [["imageFile", api.photo]]));
    assert.equal(v2.status, 402);
    const error = await editError(v2);
    assert.equal(error.detail, error.message);
    assert.deepEqual(await api.balance(accountId), before);
  });

  it("answers unknown /v2/ paths and wrong methods in Photoroom's shapes; an unknown /v1/segment field is refused by name", async () => {
    const missing = await fetch(`${api.node.url}/v2/render`, { headers: { "x-api-key": "any" } });
    assert.equal(missing.status, 404);
    assert.match((await editError(missing)).message, /^no route for GET \/v2\/render/);
    const wrongMethod = await fetch(`${api.node.url}/v2/edit`, { method: "PUT" });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get("allow"), "GET, POST");
    await editError(wrongMethod);
    const segmentMethod = await fetch(`${api.node.url}/v1/segment`);
    assert.equal(segmentMethod.status, 405);
    assert.equal((await segmentError(segmentMethod)).type, "method_not_allowed");
    const { key } = await api.account();
    const unknown = await segment({ "x-api-key": key }, form({ bg_image_url: "https://example.com/b.png" }, [["image_file", api.photo]]));
    assert.equal(unknown.status, 400);
    assert.match((await segmentError(unknown)).detail, /^bg_image_url: unsupported attributes/);
  });

  it("one Idempotency-Key answers the same result and charges once", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const headers = { "x-api-key": key, "idempotency-key": "photoroom-edit-1" };
    const first = await editPost(headers, form({ "background.color": "red" }, [["imageFile", api.photo]]));
    const second = await editPost(headers, form({ "background.color": "red" }, [["imageFile", api.photo]]));
    assert.deepEqual([first.status, second.status], [200, 200]);
    assert.equal(first.headers.get("x-job-id"), second.headers.get("x-job-id"));
    assert.deepEqual(Buffer.from(await first.arrayBuffer()), Buffer.from(await second.arrayBuffer()));
    assert.equal(before.available - (await api.balance(accountId)).available, IMAGE_MILLICREDITS);
  });
});

describe("Photoroom drop-in: imageUrl and background.imageUrl, fetched from a server on 127.0.0.1", () => {
  const images = loopbackImageServer(async () => ({
    "/photo.png": sendBytes("image/png", api.photo),
    "/background.png": sendBytes("image/png", await greenBackgroundPng()),
  }));

  it("GET /v2/edit (the OpenAPI example) fetches imageUrl once and answers as for an upload, charged once", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const fetched = images.requests.length;
    const response = await editGet({ "x-api-key": key }, { imageUrl: `${images.origin}/photo.png`, removeBackground: "true", "background.color": "FFFFFF", padding: "0.1" });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/png");
    assertBillingHeaders(response);
    const byUrl = Buffer.from(await response.arrayBuffer());
    assert.deepEqual(images.requests.slice(fetched), ["/photo.png"]);
    const byFile = await editPost({ "x-api-key": key }, form({ removeBackground: "true", "background.color": "FFFFFF", padding: "0.1" }, [["imageFile", api.photo]]));
    assert.deepEqual(byUrl, Buffer.from(await byFile.arrayBuffer()), "the fetched image is used as an uploaded one is");
    const after = await api.balance(accountId);
    assert.deepEqual([before.available - after.available, after.held], [2n * IMAGE_MILLICREDITS, 0n]);
  });

  it("background.imageUrl brings the background as background.imageFile does", async () => {
    const { key } = await api.account();
    const response = await editGet({ "x-api-key": key }, { imageUrl: `${images.origin}/photo.png`, "background.imageUrl": `${images.origin}/background.png`, "export.format": "jpg" });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/jpeg");
    const [red, green, blue] = await pixel(Buffer.from(await response.arrayBuffer()), 0, 0);
    assert.ok(Math.abs(red! - 0x20) < 12 && Math.abs(green! - 0xa0) < 12 && Math.abs(blue! - 0x40) < 12, `corner is ${[red, green, blue]}`);
  });

  it("refuses a URL it cannot fetch with 400 naming the field, and checks every parameter before fetching; nothing charged", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const missing = await editGet({ "x-api-key": key }, { imageUrl: `${images.origin}/404.png` });
    assert.equal(missing.status, 400);
    assert.match((await editError(missing)).message, /^imageUrl: 127\.0\.0\.1:\d+ answered HTTP 404/);
    const badBackground = await editGet({ "x-api-key": key }, { imageUrl: `${images.origin}/photo.png`, "background.imageUrl": "ftp://example.com/b.png" });
    assert.equal(badBackground.status, 400);
    assert.match((await editError(badBackground)).message, /^background\.imageUrl: /);
    const fetched = images.requests.length;
    const refused = await editGet({ "x-api-key": key }, { imageUrl: `${images.origin}/photo.png`, "lighting.mode": "ai.auto" });
    assert.equal(refused.status, 400);
    assert.match((await editError(refused)).message, /^lighting\.mode: generative edits/);
    assert.equal(images.requests.length, fetched, "nothing fetched for a refused request");
    assert.deepEqual(await api.balance(accountId), before);
  });
});
