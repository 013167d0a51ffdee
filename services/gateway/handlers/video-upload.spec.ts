// readVideoUpload driven over real HTTP with real bodies: busboy parses the form as it streams,
// every refusal names its limit, and no refusal or reset leaves the temporary file behind.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { createLogger } from "../../common/logging.ts";
import { ClientGone, sendError, sendJson } from "./rest-support.ts";
import { readVideoUpload, VIDEO_FORM_FIELD_BYTES_MAX, VIDEO_FORM_PARTS_MAX, VideoFile } from "./video-upload.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import { reasonOf } from "../../common/errors.ts";

const VIDEO_BYTES_MAX = 256 * 1024;
const BACKGROUND_BYTES_MAX = 32 * 1024;
const limits = { videoBytesMax: VIDEO_BYTES_MAX, videoLimitName: "VIDEO_BYTES_MAX", backgroundBytesMax: BACKGROUND_BYTES_MAX };

let server: Server;
let base: string;
let scratch: string;
const previousTmp = process.env.TMPDIR;
/** What each call ended with on the server's side: the upload's summary, or the error. */
const outcomes: Array<{ error?: unknown; video?: Buffer; sha256?: string; fields?: Record<string, string>; background?: number }> = [];
let settled: () => void = () => {};

before(async () => {
  // The uploads' temporary folders land here, so a leftover is seen (and no one else's is).
  scratch = await mkdtemp(join(tmpdir(), "video-upload-spec-"));
  process.env.TMPDIR = scratch;
  const log = createLogger("video-upload-spec", "silent");
  server = createServer(async (request, response) => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) if (typeof value === "string") headers.set(name, value);
    try {
      const upload = await readVideoUpload(request, headers, limits);
      const video = await readFile(upload.video.path);
      outcomes.push({ video, sha256: upload.video.sha256, fields: Object.fromEntries(upload.fields), background: upload.backgroundImage?.byteLength });
      await upload.cleanUp();
      sendJson(response, 200, { bytes: upload.video.bytes });
    } catch (error) {
      outcomes.push({ error });
      sendError(request, response, error, log);
    }
    settled();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/video/matting`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  process.env.TMPDIR = previousTmp;
  if (previousTmp === undefined) delete process.env.TMPDIR;
  await rm(scratch, { recursive: true, force: true });
});

beforeEach(() => {
  outcomes.length = 0;
});

/** Resolves when the server has finished the next call. */
function nextOutcome(): Promise<void> {
  return new Promise((resolve) => (settled = resolve));
}

async function leftovers(): Promise<string[]> {
  return readdir(scratch);
}

/** Sends `body` in pieces, chunked (no Content-Length: the declared-length check cannot refuse it early). */
function send(contentType: string, pieces: Buffer[]): Promise<{ status: number; body: { code?: string; message?: string } }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(base, { method: "POST", headers: { "content-type": contentType } }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const json = JSON.parse(Buffer.concat(chunks).toString() || "{}") as { errors?: Array<{ code: string; detail: string }> };
        const error = json.errors?.[0];
        resolve({ status: response.statusCode!, body: { code: error?.code, message: error?.detail } });
      });
    });
    // A server that answers before the body is done may close the connection under the writes.
    request.on("error", reject);
    for (const piece of pieces) request.write(piece);
    request.end();
  });
}

function part(boundary: string, name: string, value: Buffer | string, filename?: string): Buffer {
  const disposition = `form-data; name="${name}"${filename === undefined ? "" : `; filename="${filename}"`}`;
  const type = filename === undefined ? "" : "\r\nContent-Type: application/octet-stream";
  return Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}${type}\r\n\r\n`), Buffer.from(value), Buffer.from("\r\n")]);
}

const B = "spec-boundary-7d1";
const FORM = `multipart/form-data; boundary=${B}`;
const CLOSE = Buffer.from(`--${B}--\r\n`);

describe("readVideoUpload (busboy)", () => {
  test("a form as fetch serialises it: the video on disk byte for byte, hashed; the fields and background read", async () => {
    // Bytes with CRLFs, dashes and most of a delimiter, to tempt a naive search.
    const video = Buffer.concat([randomBytes(70_000), Buffer.from("\r\n--\r\n----"), randomBytes(3)]);
    const form = new FormData();
    form.append("format", "webm");
    form.append("video_file", new Blob([video], { type: "video/mp4" }), "clip one.mp4");
    form.append("bg_color", "#ffffff");
    form.append("bg_image_file", new Blob([randomBytes(1000)], { type: "image/png" }), "bg.png");
    const done = nextOutcome();
    const response = await fetch(base, { method: "POST", body: form });
    await done;
    assert.equal(response.status, 200);
    const outcome = outcomes[0]!;
    assert.ok(outcome.video!.equals(video));
    assert.equal(outcome.sha256, createHash("sha256").update(video).digest("hex"));
    assert.deepEqual(outcome.fields, { format: "webm", bg_color: "#ffffff" });
    assert.equal(outcome.background, 1000);
    assert.deepEqual(await leftovers(), []);
  });

  test("a body cut short (no close delimiter) is malformed_multipart, and the temporary file is gone", async () => {
    const done = nextOutcome();
    const { status, body } = await send(FORM, [part(B, "format", "webm"), part(B, "video_file", randomBytes(5000), "a.mp4").subarray(0, 3000)]);
    await done;
    assert.equal(status, 400);
    assert.equal(body.code, "malformed_multipart");
    assert.deepEqual(await leftovers(), []);
  });

  test("a part without a name is malformed_multipart", async () => {
    const nameless = Buffer.from(`--${B}\r\nContent-Disposition: form-data\r\n\r\nhello\r\n`);
    const { status, body } = await send(FORM, [nameless, part(B, "video_file", "v", "a.mp4"), CLOSE]);
    assert.equal(status, 400);
    assert.equal(body.code, "malformed_multipart");
    assert.match(body.message!, /no name/);
    assert.deepEqual(await leftovers(), []);
  });

  test("a part's header block past busboy's 16 KiB is malformed_multipart", async () => {
    const long = Buffer.from(`--${B}\r\nX-Filler: ${"a".repeat(20_000)}\r\nContent-Disposition: form-data; name="format"\r\n\r\nwebm\r\n`);
    const { status, body } = await send(FORM, [long, part(B, "video_file", "v", "a.mp4"), CLOSE]).catch(() => ({ status: 0, body: {} as { code?: string } }));
    assert.equal(status, 400);
    assert.equal(body.code, "malformed_multipart");
    assert.deepEqual(await leftovers(), []);
  });

  test("a multipart Content-Type without a boundary is malformed_multipart", async () => {
    const { status, body } = await send("multipart/form-data", [part(B, "video_file", "x", "a.mp4"), CLOSE]);
    assert.equal(status, 400);
    assert.equal(body.code, "malformed_multipart");
    assert.match(body.message!, /boundary/);
  });

  test("a field past VIDEO_FORM_FIELD_BYTES_MAX is refused naming it", async () => {
    const done = nextOutcome();
    const { status, body } = await send(FORM, [part(B, "webhook_url", "h".repeat(VIDEO_FORM_FIELD_BYTES_MAX + 1)), part(B, "video_file", randomBytes(100), "a.mp4"), CLOSE]);
    await done;
    assert.equal(status, 413);
    assert.equal(body.code, "too_many_bytes");
    assert.match(body.message!, /VIDEO_FORM_FIELD_BYTES_MAX/);
    assert.deepEqual(await leftovers(), []);
  });

  test("a video past its limit is refused naming the limit while it streams, and the temporary file is removed", async () => {
    const done = nextOutcome();
    const video = part(B, "video_file", randomBytes(VIDEO_BYTES_MAX + 1), "big.mp4");
    const pieces = [];
    for (let offset = 0; offset < video.length; offset += 16 * 1024) pieces.push(video.subarray(offset, offset + 16 * 1024));
    const { status, body } = await send(FORM, [...pieces, CLOSE]).catch(() => ({ status: 0, body: {} as { code?: string; message?: string } }));
    await done;
    const error = outcomes[0]!.error as Error;
    assert.match(error.message, new RegExp(`more than ${VIDEO_BYTES_MAX} bytes; VIDEO_BYTES_MAX`));
    // The client normally reads the 413; one still writing may see the connection closed instead.
    if (status !== 0) {
      assert.equal(status, 413);
      assert.equal(body.code, "too_many_bytes");
    }
    assert.deepEqual(await leftovers(), []);
  });

  test("more than VIDEO_FORM_PARTS_MAX parts are refused naming the limit; exactly that many pass", async () => {
    const fields = (count: number) => Array.from({ length: count }, (_, index) => part(B, `extra_${index}`, "v"));
    let done = nextOutcome();
    const ok = await send(FORM, [...fields(VIDEO_FORM_PARTS_MAX - 1), part(B, "video_file", "v", "a.mp4"), CLOSE]);
    await done;
    assert.equal(ok.status, 200);
    done = nextOutcome();
    const refused = await send(FORM, [...fields(VIDEO_FORM_PARTS_MAX), part(B, "video_file", "v", "a.mp4"), CLOSE]);
    await done;
    assert.equal(refused.status, 400);
    assert.equal(refused.body.code, "too_many_items");
    assert.match(refused.body.message!, /VIDEO_FORM_PARTS_MAX/);
    assert.deepEqual(await leftovers(), []);
  });

  test("a form without video_file is missing_video; a second video is refused", async () => {
    let response = await send(FORM, [part(B, "format", "webm"), CLOSE]);
    assert.equal(response.body.code, "missing_video");
    response = await send(FORM, [part(B, "video_file", "a", "a.mp4"), part(B, "video_file", "b", "b.mp4"), CLOSE]);
    assert.equal(response.status, 400);
    assert.match(response.body.message!, /more than one video/);
    assert.deepEqual(await leftovers(), []);
  });

  test("a client that resets mid-upload: the call ends as ClientGone and nothing is left on disk", async () => {
    const done = nextOutcome();
    const request = httpRequest(base, { method: "POST", headers: { "content-type": FORM } });
    request.on("error", () => {});
    request.write(part(B, "video_file", randomBytes(50_000), "a.mp4").subarray(0, 40_000));
    await new Promise((resolve) => setTimeout(resolve, 100));
    request.destroy();
    await done;
    assert.ok(outcomes[0]!.error instanceof ClientGone, String(outcomes[0]!.error));
    assert.deepEqual(await leftovers(), []);
  });
});

describe("VideoFile on a disk that fails", () => {
  test("an error of its stream between writes (here: its folder is gone) is kept and thrown as storage_unavailable by the next write and close, never an unhandled 'error'", async () => {
    const file = new VideoFile(join(scratch, "no-such-folder", "video"), limits);
    // The open fails on a later tick; without a listener of its own the process would crash here.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = (error: unknown) => error instanceof ConnectError && error.code === Code.Unavailable && reasonOf(error) === "storage_unavailable" && /ENOENT/.test(String((error.cause as Error).message));
    assert.throws(() => file.write(new Uint8Array(16)), refused);
    await assert.rejects(file.ready(), refused);
    await assert.rejects(file.close(), refused);
    file.destroy();
  });
});
