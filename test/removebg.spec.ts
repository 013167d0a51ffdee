// remove.bg's API as a drop-in, against a real single node (PGlite, in-process adapters, the real
// model): requests shaped like the official Ruby client's recorded traffic (remove-bg/ruby,
// spec/fixtures/vcr_cassettes: from-file-person-in-field, account, account-invalid-api-key,
// from-url-non-existent-image) and like the npm `remove.bg` client's (JSON bodies with
// image_file_b64 and Accept: application/json), checking status, headers and body field by field.
// image_url and bg_image_url are fetched from a real HTTP server on 127.0.0.1
// (CUTLINE_OUTBOUND_ALLOW_LOOPBACK=true lets loopback through, nothing else internal); UPLOAD_BYTES_MAX
// is 1 MiB so "too large" is quick to reach.
import assert from "node:assert/strict";
import http from "node:http";
import { describe, it } from "node:test";
import { unzipSync } from "fflate";
import sharp from "sharp";
import { greenBackgroundPng, loopbackImageServer, redirectTo, sendBytes } from "./loopback.testing.ts";
import { IMAGE_MILLICREDITS, publicApiNode } from "./public-api.testing.ts";

const UPLOAD_BYTES_MAX = 1024 * 1024;
const api = publicApiNode("removebg", { CUTLINE_OUTBOUND_ALLOW_LOOPBACK: "true", UPLOAD_BYTES_MAX: String(UPLOAD_BYTES_MAX) });

/** The Ruby client's request headers (remove-bg-ruby 1.4.1, Faraday). */
const rubyHeaders = (key: string) => ({
  "user-agent": "remove-bg-ruby-1.4.1",
  "x-api-key": key,
  "accept-encoding": "gzip;q=1.0,deflate;q=0.6,identity;q=0.3",
  accept: "*/*",
});

/** A multipart body as Ruby's multipart-post writes it: its boundary, and per-part Content-Length and Content-Transfer-Encoding. */
function rubyMultipart(fields: Record<string, string>, file: { name: string; filename: string; type: string; data: Uint8Array }) {
  const boundary = "-----------RubyMultipartPost-7371fb881d0c533fa2f93ee874193993";
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${file.name}"; filename="${file.filename}"\r\nContent-Length: ${file.data.byteLength}\r\n` +
        `Content-Type: ${file.type}\r\nContent-Transfer-Encoding: binary\r\n\r\n`,
    ),
    Buffer.from(file.data),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  );
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** A request with exactly these headers (fetch would add and rewrite some), answered as a Response. */
function rawRequest(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Response> {
  return new Promise((resolve, reject) => {
    const request = http.request(new URL(path, api.node.url), { method, headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on("data", (chunk: Buffer) => chunks.push(chunk));
      answer.on("end", () => {
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(answer.headers)) if (typeof value === "string") responseHeaders.set(name, value);
        resolve(new Response(Buffer.concat(chunks), { status: answer.statusCode, headers: responseHeaders }));
      });
      answer.on("error", reject);
    });
    request.on("error", reject);
    request.end(body);
  });
}

/** The tight box of the pixels whose alpha (the matte itself, for a one-channel image) is at least 13 of 255 (inference's subject threshold). */
async function alphaBox(image: Buffer | Uint8Array): Promise<{ left: number; top: number; width: number; height: number }> {
  const matte = (await sharp(image).metadata()).channels === 1;
  const { data, info } = await (matte ? sharp(image).extractChannel(0) : sharp(image).ensureAlpha()).raw().toBuffer({ resolveWithObject: true });
  const alphaAt = matte ? 0 : 3;
  let [left, top, right, bottom] = [info.width, info.height, -1, -1];
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      if (data[(y * info.width + x) * info.channels + alphaAt]! < 13) continue;
      [left, top, right, bottom] = [Math.min(left, x), Math.min(top, y), Math.max(right, x), Math.max(bottom, y)];
    }
  }
  return { left, top, width: right - left + 1, height: bottom - top + 1 };
}

/** The X-Foreground-* headers as a box. */
function foregroundHeaders(response: Response) {
  const read = (name: string) => Number(response.headers.get(`x-foreground-${name}`) ?? Number.NaN);
  return { left: read("left"), top: read("top"), width: read("width"), height: read("height") };
}

function assertNear(actual: Record<string, number>, expected: Record<string, number>, tolerance: number, what: string) {
  for (const key of Object.keys(expected)) assert.ok(Math.abs(actual[key]! - expected[key]!) <= tolerance, `${what}: ${key} ${actual[key]} vs ${expected[key]}`);
}

async function jpegPhoto(): Promise<Uint8Array> {
  return new Uint8Array(await sharp(api.photo).jpeg().toBuffer());
}

async function removeBgError(response: Response) {
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = (await response.json()) as { errors: { title: string; code: string; detail?: string }[] };
  assert.equal(body.errors.length, 1);
  return body.errors[0]!;
}

const post = (headers: Record<string, string>, body: string | Buffer | FormData) => fetch(`${api.node.url}/v1.0/removebg`, { method: "POST", headers, body });

/** A 2000×1500 (3 MP) photo-like PNG: a disc on a flat background, small enough for UPLOAD_BYTES_MAX. */
async function largePhoto(): Promise<Uint8Array> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="2000" height="1500"><rect width="2000" height="1500" fill="#d8e4f0"/><circle cx="1000" cy="780" r="480" fill="#c0501a"/></svg>`;
  return new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());
}

describe("remove.bg drop-in: POST /v1.0/removebg and GET /v1.0/account", () => {
  it("answers the Ruby client's multipart upload with the image and remove.bg's headers, charged once", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const { body, contentType } = rubyMultipart({ size: "auto" }, { name: "image_file", filename: "person-in-field.jpg", type: "image/jpeg", data: await jpegPhoto() });
    const response = await rawRequest("POST", "/v1.0/removebg", { ...rubyHeaders(key), "content-type": contentType, "content-length": String(body.byteLength) }, body);
    assert.equal(response.status, 200, await response.clone().text());
    // format auto without a background: transparent regions exist, so PNG.
    assert.equal(response.headers.get("content-type"), "image/png");
    const image = Buffer.from(await response.arrayBuffer());
    const metadata = await sharp(image).metadata();
    assert.deepEqual([metadata.format, metadata.channels, metadata.width, metadata.height], ["png", 4, 64, 64]);
    assert.equal(response.headers.get("x-width"), "64");
    assert.equal(response.headers.get("x-height"), "64");
    assert.equal(response.headers.get("x-credits-charged"), "0.5");
    assert.equal(response.headers.get("x-type"), null, "this server does not classify: no X-Type rather than an invented one");
    // The subject's box, measured by inference: the disc of radius 18 at (32, 34), as the result's alpha shows it.
    const box = foregroundHeaders(response);
    assertNear(box, await alphaBox(image), 1, "X-Foreground-* against the result's alpha");
    assertNear(box, { left: 14, top: 16, width: 36, height: 36 }, 3, "X-Foreground-* against the drawn disc");
    for (const header of ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]) assert.match(response.headers.get(header) ?? "", /^\d+$/, header);
    const after = await api.balance(accountId);
    assert.deepEqual([before.available - after.available, after.held], [IMAGE_MILLICREDITS, 0n]);
  });

  it("size=medium answers at most 1.5 MP with the input's aspect ratio, X-Width and X-Height the result's", async () => {
    const { key } = await api.account();
    const photo = await largePhoto();
    const response = await post({ "x-api-key": key }, api.imageForm(photo, { size: "medium" }));
    assert.equal(response.status, 200, await response.clone().text());
    const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    assert.ok(metadata.width! * metadata.height! <= 1_500_000 && metadata.width! * metadata.height! > 1_490_000, `${metadata.width}x${metadata.height}`);
    assert.ok(Math.abs(metadata.width! / metadata.height! - 4 / 3) < 0.01, `aspect ${metadata.width}x${metadata.height}`);
    assert.deepEqual([response.headers.get("x-width"), response.headers.get("x-height")], [String(metadata.width), String(metadata.height)]);
  });

  it("answers the Ruby client's account call with exactly remove.bg's keys, from the billing buckets", async () => {
    const { key } = await api.account();
    const response = await rawRequest("GET", "/v1.0/account", rubyHeaders(key));
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
    const body = (await response.json()) as { data: { attributes: { credits: Record<string, number>; api: Record<string, unknown> } } };
    assert.deepEqual(Object.keys(body), ["data"]);
    assert.deepEqual(Object.keys(body.data), ["attributes"]);
    assert.deepEqual(Object.keys(body.data.attributes).sort(), ["api", "credits"]);
    assert.deepEqual(Object.keys(body.data.attributes.credits).sort(), ["enterprise", "payg", "subscription", "total"]);
    assert.deepEqual(body.data.attributes.api, { free_calls: 0, sizes: "all" });
    const { credits } = body.data.attributes;
    const native = (await (await fetch(`${api.node.url}/v1/credit/balance`, { headers: { "x-api-key": key } })).json()) as { available_credits: number };
    assert.equal(credits.total, native.available_credits, "total is the spendable balance");
    assert.equal(credits.total, credits.subscription + credits.payg + credits.enterprise);
    assert.equal(credits.total, 10, "the sign-up trial (10 credits) counts as subscription credits");
    assert.deepEqual([credits.subscription, credits.payg, credits.enterprise], [10, 0, 0]);
  });

  it("takes image_file_b64 in JSON and answers {data:{result_b64}} to Accept: application/json, as the npm client sends it", async () => {
    const { key } = await api.account();
    const response = await post(
      { "x-api-key": key, accept: "application/json", "content-type": "application/json" },
      JSON.stringify({ image_file_b64: Buffer.from(api.photo).toString("base64"), size: "regular", crop: true }),
    );
    assert.equal(response.status, 200, await response.clone().text());
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
    const body = (await response.json()) as { data: { result_b64: string; foreground_top: number; foreground_left: number; foreground_width: number; foreground_height: number } };
    assert.deepEqual(Object.keys(body.data), ["result_b64", "foreground_top", "foreground_left", "foreground_width", "foreground_height"]);
    const result = Buffer.from(body.data.result_b64, "base64");
    const metadata = await sharp(result).metadata();
    assert.equal(metadata.format, "png");
    // crop=true: cut to the subject (the 36 px disc), smaller than the 64x64 input.
    assert.ok(metadata.width! < 64 && metadata.height! < 64, `cropped to ${metadata.width}x${metadata.height}`);
    assert.deepEqual([response.headers.get("x-width"), response.headers.get("x-height")], [String(metadata.width), String(metadata.height)]);
    const { foreground_top: top, foreground_left: left, foreground_width: width, foreground_height: height } = body.data;
    assert.deepEqual(foregroundHeaders(response), { left, top, width, height });
    assertNear({ left, top, width, height }, await alphaBox(result), 1, "foreground_* against the result's alpha");
    // Cropped to the subject: its box is the whole result.
    assertNear({ left, top, width, height }, { left: 0, top: 0, width: metadata.width!, height: metadata.height! }, 1, "cropped");
    assert.equal(response.headers.get("x-credits-charged"), "0.5");
  });

  it("takes urlencoded bodies; bg_color with format auto answers a JPEG", async () => {
    const { key } = await api.account();
    const form = new URLSearchParams({ image_file_b64: Buffer.from(api.photo).toString("base64"), bg_color: "green" });
    const response = await post({ "x-api-key": key, "content-type": "application/x-www-form-urlencoded" }, form.toString());
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/jpeg");
    const { data, info } = await sharp(Buffer.from(await response.arrayBuffer())).raw().toBuffer({ resolveWithObject: true });
    // The corner is background: now green (#008000), give or take JPEG's rounding.
    assert.ok(Math.abs(data[0]! - 0) < 12 && Math.abs(data[1]! - 128) < 12 && Math.abs(data[2]! - 0) < 12, `corner is ${[...data.subarray(0, info.channels)]}`);
  });

  it("answers format=zip (the Ruby client's zip request) with color.jpg and alpha.png that compose to the PNG result, charged once", async () => {
    const { accountId, key } = await api.account();
    const photo = await jpegPhoto();
    const before = await api.balance(accountId);
    const zipCall = () => {
      const { body, contentType } = rubyMultipart({ size: "auto", format: "zip" }, { name: "image_file", filename: "person-in-field.jpg", type: "image/jpeg", data: photo });
      return rawRequest("POST", "/v1.0/removebg", { ...rubyHeaders(key), "idempotency-key": "removebg-zip-1", "content-type": contentType, "content-length": String(body.byteLength) }, body);
    };
    const response = await zipCall();
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "application/zip", "the Ruby client picks its CompositeResult on application/zip");
    const archive = Buffer.from(await response.arrayBuffer());
    assert.equal(response.headers.get("content-length"), String(archive.byteLength));
    assert.deepEqual([response.headers.get("x-width"), response.headers.get("x-height"), response.headers.get("x-credits-charged")], ["64", "64", "0.5"]);
    const entries = unzipSync(archive);
    assert.deepEqual(Object.keys(entries).sort(), ["alpha.png", "color.jpg"]);
    const color = await sharp(entries["color.jpg"]!).metadata();
    const alpha = await sharp(entries["alpha.png"]!).metadata();
    assert.deepEqual([color.format, color.channels, color.hasAlpha, color.width, color.height], ["jpeg", 3, false, 64, 64]);
    assert.deepEqual([alpha.format, alpha.channels, alpha.space, alpha.width, alpha.height], ["png", 1, "b-w", 64, 64]);
    // The box in the headers is the matte's.
    assertNear(foregroundHeaders(response), await alphaBox(entries["alpha.png"]!), 1, "X-Foreground-* against alpha.png");
    // A replay under the same Idempotency-Key: the same job, the same bytes, no second charge.
    const replay = await zipCall();
    assert.equal(replay.status, 200);
    assert.deepEqual(Buffer.from(await replay.arrayBuffer()), archive, "the zip is rebuilt byte for byte");
    const after = await api.balance(accountId);
    assert.deepEqual([before.available - after.available, after.held], [IMAGE_MILLICREDITS, 0n], "charged once for the zip and its replay");

    // format=png of the same photo: alpha.png is its alpha exactly, color.jpg its colours (JPEG's rounding aside).
    const png = await post({ "x-api-key": key }, api.imageForm(photo, { size: "auto", format: "png" }));
    assert.equal(png.status, 200, await png.clone().text());
    const rgba = await sharp(Buffer.from(await png.arrayBuffer())).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    const matteRaw = await sharp(entries["alpha.png"]!).extractChannel(0).raw().toBuffer();
    const colorRaw = await sharp(entries["color.jpg"]!).raw().toBuffer();
    assert.equal(matteRaw.byteLength, 64 * 64);
    let colourError = 0;
    let opaque = 0;
    for (let pixel = 0; pixel < 64 * 64; pixel++) {
      assert.equal(matteRaw[pixel], rgba.data[pixel * 4 + 3], `alpha at pixel ${pixel}`);
      if (matteRaw[pixel]! < 255) continue;
      opaque += 1;
      for (let channel = 0; channel < 3; channel++) colourError += Math.abs(colorRaw[pixel * 3 + channel]! - rgba.data[pixel * 4 + channel]!);
    }
    assert.ok(opaque > 500, `the disc is opaque (${opaque} pixels)`);
    assert.ok(colourError / (opaque * 3) < 3, `color.jpg against the PNG's colours where opaque: mean error ${colourError / (opaque * 3)}`);
  });

  it("zip behind bg_color, answered as JSON: color.jpg is the composed image, alpha.png opaque everywhere", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const response = await post(
      { "x-api-key": key, accept: "application/json", "content-type": "application/json" },
      JSON.stringify({ image_file_b64: Buffer.from(api.photo).toString("base64"), format: "zip", bg_color: "green" }),
    );
    assert.equal(response.status, 200, await response.clone().text());
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
    const body = (await response.json()) as { data: { result_b64: string } };
    const entries = unzipSync(Buffer.from(body.data.result_b64, "base64"));
    assert.deepEqual(Object.keys(entries).sort(), ["alpha.png", "color.jpg"]);
    const matte = await sharp(entries["alpha.png"]!).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([matte.info.width, matte.info.height, matte.info.channels], [64, 64, 1]);
    assert.ok(matte.data.every((value) => value === 255), "nothing is transparent behind a background");
    const color = await sharp(entries["color.jpg"]!).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([color.info.width, color.info.height, color.info.channels], [64, 64, 3]);
    assert.ok(Math.abs(color.data[0]! - 0) < 12 && Math.abs(color.data[1]! - 128) < 12 && Math.abs(color.data[2]! - 0) < 12, `corner is ${[...color.data.subarray(0, 3)]}`);
    assert.equal(response.headers.get("x-credits-charged"), "0.5");
    const after = await api.balance(accountId);
    assert.equal(before.available - after.available, IMAGE_MILLICREDITS);
  });

  it("exposes every remove.bg header to browsers on its routes (CORS)", async () => {
    const { key } = await api.account();
    const origin = "https://app.example";
    const preflight = await fetch(`${api.node.url}/v1.0/removebg`, { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "x-api-key, content-type" } });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /X-Api-Key/i);
    const response = await post({ origin, "x-api-key": key, accept: "application/json", "content-type": "application/json" }, JSON.stringify({ image_file_b64: Buffer.from(api.photo).toString("base64") }));
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("access-control-allow-origin"), "*");
    const exposed = new Set((response.headers.get("access-control-expose-headers") ?? "").split(/,\s*/).map((name) => name.toLowerCase()));
    const documented = ["X-Credits-Charged", "X-Width", "X-Height", "X-Type", "X-Foreground-Top", "X-Foreground-Left", "X-Foreground-Width", "X-Foreground-Height", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"];
    for (const header of documented) assert.ok(exposed.has(header.toLowerCase()), `${header} is exposed`);
    // And whatever x- header this answer carries.
    for (const [name] of response.headers) if (name.startsWith("x-")) assert.ok(exposed.has(name), `${name} (sent) is exposed`);
    const refused = await fetch(`${api.node.url}/v1.0/account`, { headers: { origin } });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get("access-control-allow-origin"), "*", "refusals are readable by browsers too");
  });

  it("answers a missing or unknown key with exactly remove.bg's 403 body, on both routes", async () => {
    for (const headers of [{}, { "x-api-key": "not-a-key" }] as Record<string, string>[]) {
      const account = await fetch(`${api.node.url}/v1.0/account`, { headers });
      assert.equal(account.status, 403);
      assert.equal(await account.text(), '{"errors":[{"title":"API Key invalid","code":"auth_failed"}]}');
      const upload = await post({ ...headers, "content-type": "application/json" }, JSON.stringify({ image_file_b64: "aGk=" }));
      assert.equal(upload.status, 403);
      assert.deepEqual(await upload.json(), { errors: [{ title: "API Key invalid", code: "auth_failed" }] });
    }
  });

  it("refuses a bad parameter with remove.bg's code and nothing held or charged", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const form = api.imageForm(api.photo, { size: "gigantic" });
    const response = await post({ "x-api-key": key }, form);
    assert.equal(response.status, 400);
    const error = await removeBgError(response);
    assert.deepEqual([error.code, error.title], ["invalid_size", "Invalid value for parameter 'size'"]);
    assert.match(error.detail ?? "", /size "gigantic" is not one of preview, small, regular, medium, hd, full, 4k, auto/);
    for (const [fields, code] of [
      [{ format: "gif" }, "invalid_format"],
      [{ format: "zip", channels: "alpha" }, "invalid_channels"],
      [{ bg_color: "81d4fa77" }, "invalid_bg_color"],
      [{ crop: "true", crop_margin: "30px" }, "invalid_crop_margin"],
      [{ roi: "10% 10% 90% 90%" }, "invalid_roi"],
    ] as const) {
      const refused = await post({ "x-api-key": key }, api.imageForm(api.photo, fields));
      assert.equal(refused.status, 400, JSON.stringify(fields));
      assert.equal((await removeBgError(refused)).code, code);
    }
    const missing = await post({ "x-api-key": key, "content-type": "application/json" }, JSON.stringify({ size: "preview" }));
    assert.deepEqual(await removeBgError(missing), { code: "missing_source", title: "No image given", detail: "Please provide the source image in the image_url, image_file or image_file_b64 parameter." });
    const unreadable = await post({ "x-api-key": key, "content-type": "application/json" }, JSON.stringify({ image_file_b64: Buffer.from("not an image").toString("base64") }));
    assert.equal(unreadable.status, 400);
    assert.equal((await removeBgError(unreadable)).code, "invalid_file_type");
    assert.deepEqual(await api.balance(accountId), before);
  });

  it("answers 402 insufficient_credits when out of credits, with nothing charged", async () => {
    const accountId = "removebg-broke";
    const key = await api.node.provisionAccount(accountId, { grantTrial: false });
    const before = await api.balance(accountId);
    assert.equal(before.available, 0n);
    const response = await post({ "x-api-key": key }, api.imageForm(api.photo));
    assert.equal(response.status, 402);
    const error = await removeBgError(response);
    assert.deepEqual([error.code, error.title], ["insufficient_credits", "Insufficient credits"]);
    assert.deepEqual(await api.balance(accountId), before);
  });

  it("answers unknown paths and methods under /v1.0/ in remove.bg's shape", async () => {
    const missing = await fetch(`${api.node.url}/v1.0/improve`, { method: "POST", headers: { "x-api-key": "any" } });
    assert.equal(missing.status, 404);
    assert.equal((await removeBgError(missing)).code, "not_found");
    const wrongMethod = await fetch(`${api.node.url}/v1.0/removebg`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get("allow"), "POST");
    assert.equal((await removeBgError(wrongMethod)).code, "method_not_allowed");
  });
});

describe("remove.bg drop-in: image_url and bg_image_url, fetched from a server on 127.0.0.1", () => {
  let background = new Uint8Array();
  const images = loopbackImageServer(async () => {
    background = await greenBackgroundPng();
    return {
      "/person.jpg": sendBytes("image/jpeg", await jpegPhoto()),
      "/background.png": sendBytes("image/png", background),
      "/page.html": sendBytes("text/html", new TextEncoder().encode("<!doctype html><p>not an image</p>")),
      "/huge.png": sendBytes("image/png", Buffer.alloc(2 * UPLOAD_BYTES_MAX, 7)),
      "/to-private": redirectTo("http://10.20.30.40/person.jpg"),
    };
  });

  /** A urlencoded body as the Ruby client sends it for a URL (its from-url cassettes), with exactly its headers. */
  const rubyUrlPost = (key: string, fields: Record<string, string>) => {
    const form = Buffer.from(new URLSearchParams(fields).toString());
    return rawRequest("POST", "/v1.0/removebg", { ...rubyHeaders(key), "content-type": "application/x-www-form-urlencoded", "content-length": String(form.byteLength) }, form);
  };

  it("fetches image_url (the Ruby client's from-url request) and answers as for an upload, charged once", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    const fetched = images.requests.length;
    const response = await rubyUrlPost(key, { image_url: `${images.origin}/person.jpg`, size: "auto" });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/png");
    const image = Buffer.from(await response.arrayBuffer());
    const metadata = await sharp(image).metadata();
    assert.deepEqual([metadata.format, metadata.channels, metadata.width, metadata.height], ["png", 4, 64, 64]);
    assert.deepEqual([response.headers.get("x-width"), response.headers.get("x-height"), response.headers.get("x-credits-charged")], ["64", "64", "0.5"]);
    assertNear(foregroundHeaders(response), await alphaBox(image), 1, "X-Foreground-* against the result's alpha");
    assert.deepEqual(images.requests.slice(fetched), ["/person.jpg"], "fetched once");
    const after = await api.balance(accountId);
    assert.deepEqual([before.available - after.available, after.held], [IMAGE_MILLICREDITS, 0n]);
  });

  it("bg_image_url brings the background exactly as bg_image_file does (format auto: JPEG behind it)", async () => {
    const { key } = await api.account();
    const byUrl = await post({ "x-api-key": key }, api.imageForm(api.photo, { bg_image_url: `${images.origin}/background.png` }));
    assert.equal(byUrl.status, 200, await byUrl.clone().text());
    assert.equal(byUrl.headers.get("content-type"), "image/jpeg");
    const withFile = api.imageForm(api.photo);
    withFile.append("bg_image_file", new Blob([background], { type: "image/png" }), "background.png");
    const byFile = await post({ "x-api-key": key }, withFile);
    assert.equal(byFile.status, 200, await byFile.clone().text());
    assert.deepEqual(Buffer.from(await byUrl.arrayBuffer()), Buffer.from(await byFile.arrayBuffer()), "the fetched background is used as an uploaded one is");
  });

  it("refuses URLs it cannot use with remove.bg's codes (400), nothing held or charged", async () => {
    const { accountId, key } = await api.account();
    const before = await api.balance(accountId);
    // The Ruby client's from-url-non-existent-image request, against a URL that answers 404.
    const missing = await rubyUrlPost(key, { image_url: `${images.origin}/404.png`, size: "auto" });
    assert.equal(missing.status, 400);
    const notFound = await removeBgError(missing);
    assert.equal(notFound.code, "failed_image_download");
    assert.equal(notFound.title, `Failed to download image from given image_url: ${images.origin}/404.png`);
    assert.match(notFound.detail ?? "", /^image_url: 127\.0\.0\.1:\d+ answered HTTP 404/);
    const json = (body: Record<string, unknown>) => post({ "x-api-key": key, "content-type": "application/json" }, JSON.stringify(body));
    for (const [body, code, detail] of [
      [{ image_url: "ftp://example.com/a.png" }, "invalid_image_url", /^image_url: /],
      [{ image_url: `${images.origin}/to-private` }, "failed_image_download", /^image_url: .*10\.20\.30\.40/],
      [{ image_url: `${images.origin}/huge.png` }, "file_too_large", /^image_url: .*\b1048576\b/],
      [{ image_file_b64: Buffer.from(api.photo).toString("base64"), bg_image_url: `${images.origin}/missing.png` }, "failed_bg_download", /^bg_image_url: .*HTTP 404/],
      [{ image_file_b64: Buffer.from(api.photo).toString("base64"), bg_image_url: "not a url" }, "invalid_bg_image_url", /^bg_image_url: /],
    ] as const) {
      const response = await json(body);
      assert.equal(response.status, 400, JSON.stringify(body));
      const error = await removeBgError(response);
      assert.equal(error.code, code, JSON.stringify(body));
      assert.match(error.detail ?? "", detail, JSON.stringify(error));
    }
    // What a URL brings is checked as an upload is.
    const page = await json({ image_url: `${images.origin}/page.html` });
    assert.equal(page.status, 400);
    assert.equal((await removeBgError(page)).code, "invalid_file_type");
    assert.deepEqual(await api.balance(accountId), before);
  });

  it("checks every parameter before fetching: a bad one costs no download", async () => {
    const { key } = await api.account();
    const fetched = images.requests.length;
    const response = await post({ "x-api-key": key, "content-type": "application/json" }, JSON.stringify({ image_url: `${images.origin}/person.jpg`, size: "gigantic" }));
    assert.equal(response.status, 400);
    assert.equal((await removeBgError(response)).code, "invalid_size");
    assert.equal(images.requests.length, fetched, "nothing fetched");
  });
});
