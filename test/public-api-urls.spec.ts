// image_url, bg_image_url and batches of image_urls on a real single node (the real model), fetching
// from a real HTTP server on 127.0.0.1 (CUTLINE_OUTBOUND_ALLOW_LOOPBACK=true lets loopback through,
// and nothing else internal). UPLOAD_BYTES_MAX is 1 MiB so "too large" is quick to reach. The
// refusal of loopback with the flag off is in test/public-api.spec.ts (a gateway on the defaults).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import sharp from "sharp";
import { ImageService } from "../services/common/gen/cutline/gateway/v1/image_service_pb.ts";
import { JobService } from "../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { greenBackgroundPng, loopbackImageServer, redirectTo, sendBytes } from "./loopback.testing.ts";
import { IMAGE_MILLICREDITS, publicApiNode, TRIAL_MILLICREDITS, type BatchJson } from "./public-api.testing.ts";

const UPLOAD_BYTES_MAX = 1024 * 1024;
const HUGE_BYTES = 64 * 1024 * 1024;
const HEIC = new Uint8Array(readFileSync(join(import.meta.dirname, "..", "services", "inference", "testdata", "orange-blue-corner.heic")));

/** What the image server saw of one streamed response. */
interface Stream {
  sentBytes: number;
  finished: boolean;
  closed: boolean;
}

describe("image_url and bg_image_url on a single node", () => {
  const api = publicApiNode("public-api-urls", { CUTLINE_OUTBOUND_ALLOW_LOOPBACK: "true", UPLOAD_BYTES_MAX: String(UPLOAD_BYTES_MAX) });
  const { account, balance, errorOf } = api;
  let background = new Uint8Array();
  const streams: Stream[] = [];

  /** Streams HUGE_BYTES in 64 KiB chunks, waiting for the reader (no Content-Length unless `declared`). */
  function streamHuge(response: ServerResponse, declared: boolean): void {
    const stream: Stream = { sentBytes: 0, finished: false, closed: false };
    streams.push(stream);
    response.writeHead(200, { "content-type": "image/png", ...(declared ? { "content-length": String(HUGE_BYTES) } : {}) });
    response.on("close", () => (stream.closed = true));
    const chunk = Buffer.alloc(64 * 1024, 7);
    const pump = (): void => {
      while (stream.sentBytes < HUGE_BYTES && !stream.closed) {
        stream.sentBytes += chunk.byteLength;
        if (!response.write(chunk)) return void response.once("drain", pump);
      }
      if (!stream.closed) {
        stream.finished = true;
        response.end();
      }
    };
    pump();
  }

  const images = loopbackImageServer(async () => {
    background = await greenBackgroundPng();
    return {
      "/photo.heic": sendBytes("image/heic", HEIC),
      "/photo.png": sendBytes("image/png", api.photo),
      "/other.png": sendBytes("image/png", api.otherPhoto),
      "/background.png": sendBytes("image/png", background),
      "/page.html": sendBytes("text/html", new TextEncoder().encode("<!doctype html><p>not an image</p>")),
      "/to-private": redirectTo("http://10.20.30.40/photo.png"),
      "/to-metadata": redirectTo("http://169.254.169.254/latest/meta-data/"),
      "/huge": (response) => streamHuge(response, false),
      "/huge-declared": (response) => streamHuge(response, true),
    };
  });

  const postJson = (key: string, body: unknown, path = "/v1/matting") =>
    fetch(`${api.node.url}${path}`, { method: "POST", headers: { "x-api-key": key, "content-type": "application/json" }, body: JSON.stringify(body) });

  it("image_url (JSON body, and the query with no body) returns the cut-out and charges once", async () => {
    const { accountId, key } = await account();
    const response = await postJson(key, { image_url: `${images.origin}/photo.heic`, format: "png" });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "image/png");
    const cutOut = await sharp(new Uint8Array(await response.arrayBuffer())).metadata();
    assert.equal(cutOut.hasAlpha, true);
    const charged = BigInt(Math.round(Number(response.headers.get("x-credits-charged")) * 1000));
    assert.ok(charged > 0n);
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - charged, held: 0n }, "charged exactly once, nothing left held");
    assert.equal(images.requests.filter((path) => path === "/photo.heic").length, 1, "fetched once");

    const byQuery = await fetch(`${api.node.url}/v1/matting?image_url=${encodeURIComponent(`${images.origin}/photo.png`)}`, { method: "POST", headers: { "x-api-key": key } });
    assert.equal(byQuery.status, 200, await byQuery.clone().text());
    await byQuery.arrayBuffer();
    assert.equal(byQuery.headers.get("x-credits-charged"), "0.5");
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - charged - IMAGE_MILLICREDITS, held: 0n });

    // POST /v1/quote takes the same URL and prices exactly what the call charged, holding nothing.
    const quote = await fetch(`${api.node.url}/v1/quote?image_url=${encodeURIComponent(`${images.origin}/photo.png`)}`, { method: "POST", headers: { "x-api-key": key } });
    assert.equal(quote.status, 200, await quote.clone().text());
    assert.equal(((await quote.json()) as { credits: number }).credits, 0.5);
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - charged - IMAGE_MILLICREDITS, held: 0n });
  });

  it("bg_image_url brings the background exactly as bg_image_file does: the same result, charged once", async () => {
    const { accountId, key } = await account();
    const cutOut = async (fields: Record<string, string>, file?: Uint8Array) => {
      const form = api.imageForm(api.photo, fields);
      if (file) form.append("bg_image_file", new Blob([file], { type: "image/png" }), "background.png");
      const response = await fetch(`${api.node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: form });
      assert.equal(response.status, 200, await response.clone().text());
      return new Uint8Array(await response.arrayBuffer());
    };
    const fetched = images.requests.length;
    const byUrl = await cutOut({ bg_image_url: `${images.origin}/background.png` });
    assert.deepEqual(images.requests.slice(fetched), ["/background.png"]);
    const byFile = await cutOut({}, background);
    const without = await cutOut({});
    assert.deepEqual(byUrl, byFile, "the fetched background is used as an uploaded one is");
    assert.notDeepEqual(byUrl, without, "the background changes the result");
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - 3n * IMAGE_MILLICREDITS, held: 0n });
  });

  it("a redirect to a private or link-local address is refused (image_url_refused) and nothing is charged", async () => {
    const { accountId, key } = await account();
    for (const [path, address] of [["/to-private", /10\.20\.30\.40, a private address/], ["/to-metadata", /169\.254\.169\.254, a linkLocal address/]] as const) {
      const response = await postJson(key, { image_url: `${images.origin}${path}` });
      assert.equal(response.status, 400);
      const error = await errorOf(response);
      assert.equal(error.code, "image_url_refused");
      assert.match(error.title, /^image_url: /);
      assert.match(error.title, address);
    }
    const background = await fetch(`${api.node.url}/v1/matting`, { method: "POST", headers: { "x-api-key": key }, body: api.imageForm(api.photo, { bg_image_url: `${images.origin}/to-private` }) });
    assert.equal(background.status, 400);
    assert.match((await errorOf(background)).title, /^bg_image_url: .*private address/);
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS, held: 0n });
  });

  it("a body past the limit answers 413 naming it, and the gateway stops reading: the server sees the connection closed early", async (t) => {
    const { accountId, key } = await account();
    for (const path of ["/huge", "/huge-declared"]) {
      const before = streams.length;
      const response = await postJson(key, { image_url: `${images.origin}${path}` });
      assert.equal(response.status, 413, path);
      const error = await errorOf(response);
      assert.equal(error.code, "image_url_too_large");
      assert.match(error.title, new RegExp(`^image_url: the response from 127\\.0\\.0\\.1:\\d+ is .*bytes; the limit is ${UPLOAD_BYTES_MAX} bytes \\(UPLOAD_BYTES_MAX\\)`));
      const stream = streams[before]!;
      const deadline = Date.now() + 5000;
      while (!stream.closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(stream.closed, true, `${path}: the gateway closed the connection`);
      assert.equal(stream.finished, false, `${path}: the body was not read to its end`);
      assert.ok(stream.sentBytes < HUGE_BYTES / 2, `${path}: ${stream.sentBytes} of ${HUGE_BYTES} bytes sent`);
      t.diagnostic(`${path}: the server wrote ${stream.sentBytes} of ${HUGE_BYTES} bytes before the gateway closed the connection`);
    }
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS, held: 0n });
  });

  it("a 404, an unknown host and a page that is not an image are clear errors, and nothing is charged", async () => {
    const { accountId, key } = await account();
    const missing = await postJson(key, { image_url: `${images.origin}/gone.png` });
    assert.equal(missing.status, 422);
    const missingError = await errorOf(missing);
    assert.equal(missingError.code, "image_url_unreachable");
    assert.match(missingError.title, /^image_url: 127\.0\.0\.1:\d+ answered HTTP 404; the URL must answer 2xx with the image$/);
    const noHost = await postJson(key, { image_url: "http://no-such-host.invalid/photo.png" });
    assert.equal(noHost.status, 422);
    assert.match((await errorOf(noHost)).title, /^image_url: fetching no-such-host\.invalid failed/);
    const page = await postJson(key, { image_url: `${images.origin}/page.html` });
    assert.equal(page.status, 400);
    assert.equal((await errorOf(page)).code, "unsupported_format", "fetched bytes are sniffed exactly as an upload is");
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS, held: 0n });
  });

  it("a batch of image_urls where one 404s and one is not an image: those are their items' errors, the others succeed and only they are charged", async () => {
    const { accountId, key } = await account();
    const urls = [`${images.origin}/photo.png`, `${images.origin}/gone.png`, `${images.origin}/other.png`, `${images.origin}/page.html`, "ftp://example.com/x.png"];
    const response = await fetch(`${api.node.url}/v1/matting/batch`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json", "idempotency-key": "url-batch" },
      body: JSON.stringify({ image_urls: urls, size: "full" }),
    });
    assert.equal(response.status, 202, await response.clone().text());
    const batch = (await response.json()) as BatchJson;
    assert.deepEqual(batch.items.map((item) => item.index), [0, 1, 2, 3, 4]);
    assert.deepEqual(batch.items.map((item) => item.error?.code ?? null), [null, "image_url_unreachable", null, "unsupported_format", "image_url_invalid"]);
    assert.match(batch.items[1]!.error!.title, /^image_urls\[1\]: .*answered HTTP 404/);
    assert.match(batch.items[4]!.error!.title, /^image_urls\[4\]: the URL must be http or https, not ftp/);
    for (const index of [1, 3, 4]) assert.equal(batch.items[index]!.job, null);
    for (const index of [0, 2]) {
      const job = await api.pollUntilDone(key, batch.items[index]!.job!.id);
      assert.equal(job.status, "succeeded", JSON.stringify(job));
      assert.equal(job.credits_charged, 0.5);
    }
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - 2n * IMAGE_MILLICREDITS, held: 0n }, "only the two good items were charged");
  });

  it("the typed RPCs take image_url and background_image_url too, with the same reasons", async () => {
    const { accountId, key } = await account();
    const transport = createConnectTransport({ baseUrl: api.node.url, httpVersion: "1.1" });
    const headers = { headers: { "x-api-key": key } };
    const answer = await createClient(ImageService, transport).removeBackground({ imageUrl: `${images.origin}/photo.png`, backgroundImageUrl: `${images.origin}/background.png` }, headers);
    assert.equal(answer.contentType, "image/png");
    assert.equal(answer.creditsChargedMillicredits, IMAGE_MILLICREDITS);
    const jobs = createClient(JobService, transport);
    const refusedWith = (reason: string, message: RegExp) => (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.deepEqual([error.code, error.metadata.get("cutline-reason")], [Code.InvalidArgument, reason]);
      assert.match(error.rawMessage, message);
      return true;
    };
    await assert.rejects(jobs.submit({ imageUrl: `${images.origin}/gone.png` }, headers), refusedWith("image_url_unreachable", /^image_url: .*HTTP 404/));
    await assert.rejects(jobs.submit({ image: api.photo, imageUrl: `${images.origin}/photo.png` }, headers), refusedWith("conflicting_image_inputs", /^send either image or image_url, not both$/));
    await assert.rejects(jobs.submit({ image: api.photo, backgroundImageUrl: "http://10.0.0.7/b.png" }, headers), refusedWith("image_url_refused", /^background_image_url: .*private address/));
    assert.deepEqual(await balance(accountId), { available: TRIAL_MILLICREDITS - IMAGE_MILLICREDITS, held: 0n }, "only the one call that worked was charged");
  });
});
