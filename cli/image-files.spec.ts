import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { collectInputs, outputCollisions, outputNameOf, sniffImage } from "./image-files.ts";
import { idempotencyKeyOf } from "./remove.command.ts";

const bytes = (...parts: (string | number[])[]) =>
  new Uint8Array(parts.flatMap((part) => (typeof part === "string" ? [...part].map((character) => character.charCodeAt(0)) : part)));

describe("image files", () => {
  it("sniffs the formats the gateway reads by their first bytes, and nothing else", () => {
    assert.equal(sniffImage(bytes([0xff, 0xd8, 0xff, 0xe0])), "jpeg");
    assert.equal(sniffImage(bytes("\x89PNG\r\n\x1a\n")), "png");
    assert.equal(sniffImage(bytes("RIFF", [1, 2, 3, 4], "WEBPVP8 ")), "webp");
    assert.equal(sniffImage(bytes("GIF89a")), "gif");
    assert.equal(sniffImage(bytes("BM", [0, 0])), "bmp");
    assert.equal(sniffImage(bytes("II*\0")), "tiff");
    assert.equal(sniffImage(bytes([0, 0, 0, 24], "ftypheic")), "heic");
    assert.equal(sniffImage(bytes("hello, world")), undefined);
    assert.equal(sniffImage(bytes([0, 0, 0, 24], "ftypisom")), undefined, "an MP4 is not an image");
    assert.equal(sniffImage(new Uint8Array()), undefined);
  });

  it("names outputs <name>.<format>, the mask <name>.mask.png, and finds two inputs writing one output", () => {
    assert.equal(outputNameOf("a/photo.jpeg", "png"), "photo.png");
    assert.equal(outputNameOf("scan", "jpg"), "scan.jpg");
    assert.equal(outputNameOf("photo.png", "mask"), "photo.mask.png");
    assert.deepEqual(outputCollisions([{ path: "a/x.jpg" }, { path: "b/x.png" }, { path: "y.png" }], "webp"), ["a/x.jpg and b/x.png both write x.webp"]);
  });

  it("walks folders for images (sniffed), skipping dot-files and the output folder; missing paths are listed", async () => {
    const root = mkdtempSync(join(tmpdir(), "cutline-image-files-"));
    try {
      mkdirSync(join(root, "in", "nested"), { recursive: true });
      mkdirSync(join(root, "in", "out"));
      writeFileSync(join(root, "in", "b.JPG"), bytes([0xff, 0xd8, 0xff, 0xe0]));
      writeFileSync(join(root, "in", "nested", "a"), bytes("\x89PNG\r\n\x1a\n"));
      writeFileSync(join(root, "in", "notes.txt"), "text");
      writeFileSync(join(root, "in", ".hidden.png"), bytes("\x89PNG\r\n\x1a\n"));
      writeFileSync(join(root, "in", "out", "done.png"), bytes("\x89PNG\r\n\x1a\n"));
      const collected = await collectInputs([join(root, "in"), join(root, "in", "b.JPG"), join(root, "gone.png")], join(root, "in", "out"));
      assert.deepEqual(collected.files.map((file) => file.path), [join(root, "in", "b.JPG"), join(root, "in", "nested", "a")]);
      assert.equal(collected.ignored, 1);
      assert.deepEqual(collected.missing, [{ path: join(root, "gone.png"), message: "no such file or folder" }]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("derives the idempotency key from the content and the options only", () => {
    const options = { format: "png", size: "full", backgroundColor: "" } as const;
    const key = idempotencyKeyOf(bytes("image"), options);
    assert.equal(idempotencyKeyOf(bytes("image"), { ...options }), key);
    assert.notEqual(idempotencyKeyOf(bytes("image!"), options), key);
    assert.notEqual(idempotencyKeyOf(bytes("image"), { ...options, format: "webp" }), key);
    assert.notEqual(idempotencyKeyOf(bytes("image"), { ...options, backgroundColor: "#ffffff" }), key);
    assert.ok(key.length <= 255, "within the gateway's IDEMPOTENCY_KEY_LENGTH_MAX");
  });
});
