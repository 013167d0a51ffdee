// The npm `remove.bg` client (EddyVerbruggen/remove.bg 1.3.0, a dev dependency) against a real
// single node, unmodified except that a copy of its module has its hard-coded API_ENDPOINT
// pointed here. The copy lives in a temp directory whose node_modules links to ours, so its
// require("unirest") resolves as the original's does; node_modules/remove.bg is never touched.
// It always sends Accept: application/json and reads the result from data.result_b64 and the
// headers (X-Credits-Charged, X-Type, X-Width, X-Height, X-RateLimit-*, Retry-After) as strings.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { IMAGE_MILLICREDITS, publicApiNode } from "./public-api.testing.ts";

type RemoveBgClient = typeof import("remove.bg");

const api = publicApiNode("removebg-client", { CUTLINE_OUTBOUND_ALLOW_LOOPBACK: "true" });
const repository = join(import.meta.dirname, "..");
const REMOVE_BG_ENDPOINT = "https://api.remove.bg/v1.0/removebg";

/** The client's module with its endpoint constant, and nothing else, pointed at `endpoint`. */
function clientFor(endpoint: string, directory: string): RemoveBgClient {
  const source = readFileSync(join(repository, "node_modules", "remove.bg", "dist", "index.js"), "utf8");
  const constant = `const API_ENDPOINT = "${REMOVE_BG_ENDPOINT}";`;
  assert.equal(source.split(constant).length, 2, "remove.bg 1.3.0 names its endpoint once, in API_ENDPOINT");
  symlinkSync(join(repository, "node_modules"), join(directory, "node_modules"), "dir");
  const copy = join(directory, "remove.bg.js");
  writeFileSync(copy, source.replace(constant, `const API_ENDPOINT = ${JSON.stringify(endpoint)};`));
  return createRequire(import.meta.url)(copy) as RemoveBgClient;
}

/** What the client's promise rejects with: remove.bg's `errors` array. */
async function rejectionOf(promise: Promise<unknown>): Promise<{ title: string; code: string; detail?: string }[]> {
  try {
    await promise;
  } catch (errors) {
    return errors as { title: string; code: string; detail?: string }[];
  }
  assert.fail("the client resolved; expected it to reject");
}

describe("the npm remove.bg client, its endpoint pointed at this server", () => {
  const directory = mkdtempSync(join(tmpdir(), "cutline-removebg-client-"));
  let removeBg: RemoveBgClient;
  let images: http.Server;
  let origin = "";
  const fetched: string[] = [];

  before(async () => {
    removeBg = clientFor(`${api.node.url}/v1.0/removebg`, directory);
    images = http.createServer((request, response) => {
      const path = new URL(request.url ?? "/", "http://x").pathname;
      fetched.push(path);
      if (path !== "/person.png") return void response.writeHead(404, { "content-type": "text/plain" }).end("no such image");
      response.writeHead(200, { "content-type": "image/png", "content-length": String(api.photo.byteLength) }).end(api.photo);
    });
    await new Promise<void>((resolve) => images.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
  });

  after(async () => {
    images?.closeAllConnections();
    await new Promise((resolve) => images?.close(resolve));
    rmSync(directory, { recursive: true, force: true });
  });

  /** The result's fields as the client parses them (strings from headers), against what this server sends. */
  async function checkResult(result: Awaited<ReturnType<RemoveBgClient["removeBackgroundFromImageFile"]>>, expected: { format: string; width: number; height: number }) {
    assert.deepEqual(
      Object.keys(result).sort(),
      ["base64img", "creditsCharged", "detectedType", "rateLimit", "rateLimitRemaining", "rateLimitReset", "resultHeight", "resultWidth", "retryAfter"].sort(),
    );
    const image = Buffer.from(result.base64img, "base64");
    const metadata = await sharp(image).metadata();
    assert.deepEqual([metadata.format, metadata.width, metadata.height], [expected.format, expected.width, expected.height]);
    // unirest hands headers over as the strings they are; the client passes them on unparsed.
    assert.equal(result.creditsCharged, "0.5");
    assert.equal(result.resultWidth, String(expected.width));
    assert.equal(result.resultHeight, String(expected.height));
    assert.equal(result.detectedType, undefined, "no X-Type: this server does not classify");
    assert.match(String(result.rateLimit), /^\d+$/);
    assert.match(String(result.rateLimitRemaining), /^\d+$/);
    assert.ok(Number(result.rateLimitRemaining) < Number(result.rateLimit), "this call took one of the minute's requests");
    assert.ok(Math.abs(Number(result.rateLimitReset) - Date.now() / 1000) <= 61, `rateLimitReset ${result.rateLimitReset} is a Unix time within the minute`);
    assert.equal(result.retryAfter, undefined, "Retry-After only comes with a 429");
    return image;
  }

  it("removeBackgroundFromImageFile: a multipart upload with its defaults; the PNG in base64img and in outputFile, charged once", async () => {
    const { accountId, key } = await api.account();
    const path = join(directory, "person.png");
    writeFileSync(path, api.photo);
    const outputFile = join(directory, "person-removebg.png");
    const before = await api.balance(accountId);
    const result = await removeBg.removeBackgroundFromImageFile({ apiKey: key, path, outputFile });
    const image = await checkResult(result, { format: "png", width: 64, height: 64 });
    assert.equal((await sharp(image).metadata()).channels, 4, "transparent where the background was");
    assert.deepEqual(readFileSync(outputFile), image, "outputFile holds base64img's bytes");
    const after = await api.balance(accountId);
    assert.deepEqual([before.available - after.available, after.held], [IMAGE_MILLICREDITS, 0n]);
  });

  it("removeBackgroundFromImageBase64: JSON with image_file_b64; bg_color and crop as the client sends them", async () => {
    const { key } = await api.account();
    const result = await removeBg.removeBackgroundFromImageBase64({ apiKey: key, base64img: Buffer.from(api.photo).toString("base64"), size: "regular", bg_color: "81d4fa", crop: true });
    // format auto behind a colour: JPEG; crop=true: cut to the 36 px disc.
    const metadata = await sharp(Buffer.from(result.base64img, "base64")).metadata();
    assert.ok(metadata.width! < 64 && metadata.height! < 64, `cropped to ${metadata.width}x${metadata.height}`);
    const image = await checkResult(result, { format: "jpeg", width: metadata.width!, height: metadata.height! });
    const { data } = await sharp(image).raw().toBuffer({ resolveWithObject: true });
    // The cropped disc reaches the corners only as anti-aliasing; the corner pixel is the background colour.
    assert.ok(Math.abs(data[0]! - 0x81) < 16 && Math.abs(data[1]! - 0xd4) < 16 && Math.abs(data[2]! - 0xfa) < 16, `corner is ${[...data.subarray(0, 3)]}`);
  });

  it("removeBackgroundFromImageUrl: image_url fetched from a loopback server, once", async () => {
    const { key } = await api.account();
    const before = fetched.length;
    const result = await removeBg.removeBackgroundFromImageUrl({ apiKey: key, url: `${origin}/person.png`, size: "auto" });
    await checkResult(result, { format: "png", width: 64, height: 64 });
    assert.deepEqual(fetched.slice(before), ["/person.png"]);
  });

  it("rejects with remove.bg's errors array: a bad key, a bad parameter, an unreachable image_url", async () => {
    const { accountId, key } = await api.account();
    const base64img = Buffer.from(api.photo).toString("base64");
    const balance = await api.balance(accountId);
    assert.deepEqual(await rejectionOf(removeBg.removeBackgroundFromImageBase64({ apiKey: "not-a-key", base64img })), [{ title: "API Key invalid", code: "auth_failed" }]);
    const [scale] = await rejectionOf(removeBg.removeBackgroundFromImageBase64({ apiKey: key, base64img, scale: "5%" }));
    assert.deepEqual([scale!.code, scale!.title], ["invalid_scale", "Invalid scale parameter given"]);
    assert.match(scale!.detail ?? "", /scale "5%" .* 10% to 100%/);
    const [download] = await rejectionOf(removeBg.removeBackgroundFromImageUrl({ apiKey: key, url: `${origin}/missing.png` }));
    assert.deepEqual([download!.code, download!.title], ["failed_image_download", `Failed to download image from given image_url: ${origin}/missing.png`]);
    assert.deepEqual(await api.balance(accountId), balance, "nothing charged for refusals");
  });
});
