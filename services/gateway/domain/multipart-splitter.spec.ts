import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { MultipartError, MultipartSplitter, partHeadersOf, type PartHeaders } from "./multipart-splitter.ts";

interface Part {
  headers: PartHeaders;
  bytes: Buffer;
}

/** Splits `body` fed in chunks of `chunkSize` bytes. */
function split(body: Buffer, boundary: string, chunkSize: number): Part[] {
  const parts: Part[] = [];
  let current: { headers: PartHeaders; chunks: Buffer[] } | undefined;
  const splitter = new MultipartSplitter(boundary, {
    start: (headers) => (current = { headers, chunks: [] }),
    data: (chunk) => current!.chunks.push(Buffer.from(chunk)),
    end: () => parts.push({ headers: current!.headers, bytes: Buffer.concat(current!.chunks) }),
  });
  for (let offset = 0; offset < body.length; offset += chunkSize) splitter.push(body.subarray(offset, offset + chunkSize));
  splitter.end();
  return parts;
}

/** A body as fetch serialises a FormData, and its boundary. */
async function encoded(form: FormData): Promise<{ body: Buffer; boundary: string }> {
  const request = new Request("http://x.invalid", { method: "POST", body: form });
  const boundary = /boundary=(.+)$/.exec(request.headers.get("content-type")!)![1]!;
  return { body: Buffer.from(await request.arrayBuffer()), boundary };
}

describe("MultipartSplitter", () => {
  test("splits what fetch serialises into the same parts, whatever the chunk sizes", async () => {
    // Bytes that contain CRLFs, dashes and most of a delimiter, to tempt a naive search.
    const video = Buffer.concat([randomBytes(70_000), Buffer.from("\r\n--\r\n----"), randomBytes(3)]);
    const form = new FormData();
    form.append("format", "webm");
    form.append("video_file", new Blob([video], { type: "video/mp4" }), "clip one.mp4");
    form.append("bg_color", "#ffffff");
    const { body, boundary } = await encoded(form);
    for (const chunkSize of [1, 7, 63, 64, 65, 4096, body.length]) {
      const parts = split(body, boundary, chunkSize);
      assert.deepEqual(
        parts.map((part) => [part.headers.name, part.headers.filename, part.headers.contentType]),
        [
          ["format", undefined, undefined],
          ["video_file", "clip one.mp4", "video/mp4"],
          ["bg_color", undefined, undefined],
        ],
        `chunks of ${chunkSize}`,
      );
      assert.equal(parts[0]!.bytes.toString(), "webm");
      assert.ok(parts[1]!.bytes.equals(video), `the file's bytes, chunks of ${chunkSize}`);
      assert.equal(parts[2]!.bytes.toString(), "#ffffff");
    }
  });

  test("refuses a body cut short, a part without a name, and an over-long header block", () => {
    const boundary = "xyz";
    const cut = Buffer.from('--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\nhello');
    assert.throws(() => split(cut, boundary, 5), MultipartError);
    const nameless = Buffer.from("--xyz\r\nContent-Disposition: form-data\r\n\r\nhello\r\n--xyz--\r\n");
    assert.throws(() => split(nameless, boundary, 100), MultipartError);
    const long = Buffer.from(`--xyz\r\nX-Filler: ${"a".repeat(20_000)}`);
    assert.throws(() => split(long, boundary, 1000), /PART_HEADER_BYTES_MAX/);
  });

  test("ignores preamble and epilogue, and reads unquoted parameters", () => {
    const body = Buffer.from("preamble text\r\n--b\r\nContent-Disposition: form-data; name=quality\r\n\r\nbest\r\n--b--\r\nepilogue");
    const parts = split(body, "b", 3);
    assert.deepEqual(parts.map((part) => [part.headers.name, part.bytes.toString()]), [["quality", "best"]]);
    assert.deepEqual(partHeadersOf('Content-Disposition: form-data; name="video_file"; filename="a.mov"\r\nContent-Type: video/quicktime'), {
      name: "video_file",
      filename: "a.mov",
      contentType: "video/quicktime",
    });
  });
});
