import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkPngDataLength, readBmpHeader } from "./image-header.reader.ts";
import { ImageError } from "./image.errors.ts";

/** A BMP with a 40-byte info header; `fields` overrides header values, `dataBytes` sets the pixel bytes present. */
function bmp(fields: { width?: number; height?: number; bits?: number; compression?: number; colours?: number; headerSize?: number; pixelsAt?: number }, dataBytes: number): Uint8Array {
  const bits = fields.bits ?? 24;
  const palette = bits <= 8 ? 4 * (fields.colours || 2 ** bits) : 0;
  const pixelsAt = fields.pixelsAt ?? 54 + palette;
  const bytes = Buffer.alloc(Math.max(pixelsAt, 54 + palette) + dataBytes);
  bytes.write("BM", 0, "latin1");
  bytes.writeUInt32LE(pixelsAt, 10);
  bytes.writeUInt32LE(fields.headerSize ?? 40, 14);
  bytes.writeInt32LE(fields.width ?? 4, 18);
  bytes.writeInt32LE(fields.height ?? 4, 22);
  bytes.writeUInt16LE(1, 26);
  bytes.writeUInt16LE(bits, 28);
  bytes.writeUInt32LE(fields.compression ?? 0, 30);
  bytes.writeUInt32LE(fields.colours ?? 0, 46);
  return bytes;
}

function refused(make: () => unknown, reason: string, mentions: RegExp): void {
  assert.throws(make, (error: unknown) => {
    assert.ok(error instanceof ImageError);
    assert.equal(error.reason, reason);
    assert.match(error.message, mentions);
    return true;
  });
}

describe("BMP header", () => {
  it("reads an uncompressed BMP whose rows are all present, the last one without padding", () => {
    // 5 pixels × 3 bytes = 15 bytes a row, padded to 16: 16 × 2 + 15.
    assert.deepEqual(readBmpHeader(bmp({ width: 5, height: -3 }, 47)), {
      width: 5,
      height: 3,
      bitsPerPixel: 24,
      compression: 0,
      topDown: true,
      pixelsAt: 54,
      declaredPixelsAt: 54,
    });
    refused(() => readBmpHeader(bmp({ width: 5, height: 3 }, 46)), "corrupt_image", /need 47 bytes, but the file has 46 \(truncated\)/);
  });

  const cases: [string, Uint8Array, string, RegExp][] = [
    ["1 KB of RLE8 claiming 10000×10000", bmp({ width: 10_000, height: 10_000, bits: 8, compression: 1 }, 4), "corrupt_image", /10000×10000.*at most 510 \(truncated\)/],
    ["a 24-bit BMP claiming 10000×10000", bmp({ width: 10_000, height: 10_000 }, 100), "corrupt_image", /need 300000000 bytes/],
    ["a negative width", bmp({ width: -4 }, 64), "corrupt_image", /-4×4/],
    ["a zero height", bmp({ height: 0 }, 64), "corrupt_image", /4×0/],
    ["an OS/2 header", bmp({ headerSize: 12 }, 64), "unsupported_format", /12-byte info header/],
    ["embedded JPEG", bmp({ compression: 4 }, 64), "unsupported_format", /compression 4/],
    ["RLE8 at 24 bits", bmp({ compression: 1 }, 64), "corrupt_image", /24 bits per pixel do not go with compression 1/],
    ["a palette larger than the depth allows", bmp({ bits: 4, colours: 17 }, 64), "corrupt_image", /17 colours, more than 16/],
    ["pixels past the end", bmp({ pixelsAt: 100_000 }, 0), "corrupt_image", /past the end/],
    ["a file shorter than its headers", Buffer.from("BM\0\0"), "corrupt_image", /fewer than the 54/],
  ];
  for (const [what, bytes, reason, mentions] of cases) it(`refuses ${what}`, () => refused(() => readBmpHeader(bytes), reason, mentions));

  it("finds pixels after a gap the file header declares", () => {
    const header = readBmpHeader(bmp({ width: 4, height: 4, pixelsAt: 200 }, 64));
    assert.equal(header.pixelsAt, 54);
    assert.equal(header.declaredPixelsAt, 200);
  });
});

describe("PNG data length", () => {
  function png(width: number, height: number, idatBytes: number): Uint8Array {
    const chunk = (type: string, length: number) => {
      const bytes = Buffer.alloc(12 + length);
      bytes.writeUInt32BE(length, 0);
      bytes.write(type, 4, "latin1");
      return bytes;
    };
    const ihdr = chunk("IHDR", 13);
    ihdr.writeUInt32BE(width, 8);
    ihdr.writeUInt32BE(height, 12);
    ihdr[16] = 8;
    ihdr[17] = 6;
    return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr, chunk("IDAT", idatBytes), chunk("IEND", 0)]);
  }

  it("accepts image data that deflate could expand to the declared rows", () => {
    // 1000 rows of 1 + 4000 bytes: 4,001,000 bytes, at most 1032 per compressed byte.
    checkPngDataLength(png(1000, 1000, 3878));
  });

  it("refuses image data too short for the declared rows, naming the sizes", () => {
    refused(() => checkPngDataLength(png(1000, 1000, 3876)), "corrupt_image", /1000×1000 pixels, 4001000 bytes once inflated, but its 3876 bytes/);
    refused(() => checkPngDataLength(png(10_000, 10_000, 8)), "corrupt_image", /10000×10000.*truncated/);
  });
});
